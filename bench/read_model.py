"""The gateway's read model at scale: memory and time to ready for N executions, first start and
restart on its state directory.

    .venv/bin/python -m bench.read_model                      # 100,000 executions (a few minutes)
    .venv/bin/python -m bench.read_model --executions 10000   # quicker
    .venv/bin/python -m bench.read_model --baseline-tree /tmp/before   # also run another checkout's gateway

Starts one broker (`local_kafka.select.kafka_broker`: KAFKA_BOOTSTRAP_SERVERS wins), creates the
processor's topics under a fresh application id, and writes N executions as the processor does:
for each, its first `--changes` state changes (the creation, with every ticket, then the release
mark and the OMS's reports, each DELTA) on `execution-state-changes` and the table row after the
last of them (SUMMARY) on `execution-snapshots`. The records come from one execution driven by the
domain against the mock OMS (`testkit.gateway_fakes.execution_records`), renamed per execution.
Then it runs `python -m gateway` as its own process with a state directory and measures:

- time from the process start to `/readyz` 200 (first start: the store built from the topics);
- the process's RSS when ready and its peak (VmHWM), and the CPU seconds it used;
- a few GETs, event pages and list pages (answer times, to see the store serves);
- the same after SIGTERM and a restart on the same state directory (the store resumed);
- with `--baseline-tree DIR`: `python -m gateway` of another checkout (e.g. the commit before the
  store, `git worktree add /tmp/before <commit>`) on the same topics, for comparison.

Every process it starts is stopped by its PID. Performance is measured here, never as timed
assertions in tests. Prints a markdown table (docs/gateway.md, "Read model: measured").
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, fields
from datetime import timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from kafka_client.settings import KafkaSettings
from local_kafka.broker import free_loopback_port
from local_kafka.select import kafka_broker
from processor.config import ProcessorConfig
from processor.topics import prepare_topics
from testkit.gateway_fakes import execution_records
from wire import serde
from wire.topics import TopicNames

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-read-model-token-" + uuid.uuid4().hex


def log(message: str) -> None:
    print(f"[read-model {time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- records ---------------------------------------------------------------------------------------


def templates(changes: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The first `changes` state changes of one execution and the table row after the last."""
    all_changes, rows = execution_records("exec_template", "rfc_accept_all")
    changes = min(changes, len(all_changes))
    return all_changes[:changes], rows[changes - 1]


def renamed(record: dict[str, Any], execution_id: str, created_shift: timedelta, proposal_id: str) -> dict[str, Any]:
    """A snapshot record of another execution: its id, proposal, key and times moved."""
    return {**record, "execution_id": execution_id, "proposal_id": proposal_id, "idempotency_key": execution_id,
            "created_at": record["created_at"] + created_shift, "updated_at": record["updated_at"] + created_shift}


def write_executions(bootstrap: str, topics: TopicNames, count: int, changes: int) -> tuple[int, int, float]:
    """Produce `count` executions; returns (state changes, table rows, seconds)."""
    change_templates, row_template = templates(changes)
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "enable.idempotence": True,
                         "linger.ms": 50, "batch.size": 1_000_000, "compression.type": "lz4",
                         "queue.buffering.max.kbytes": 1_000_000})
    started = time.monotonic()
    produced = rows = 0

    def send(topic: str, key: bytes, value: bytes) -> None:
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                return
            except BufferError:
                producer.poll(0.05)

    for n in range(count):
        execution_id = f"exec_bench_{n:08d}"
        key = execution_id.encode()
        shift = timedelta(seconds=n)
        proposal_id = f"prop_bench_{n % 1000:04d}"
        for change in change_templates:
            record = {**change, "execution_id": execution_id, "change_id": f"{execution_id}/{change['sequence']}",
                      "execution": renamed(change["execution"], execution_id, shift, proposal_id)}
            send(topics.execution_state_changes, key, serde.encode("ExecutionStateChange", record))
            produced += 1
        send(topics.execution_snapshots, key, serde.encode("ExecutionSnapshot",
                                                             renamed(row_template, execution_id, shift, proposal_id)))
        rows += 1
        if n % 10_000 == 9_999:
            producer.poll(0)
            log(f"  {n + 1:,} executions written")
    producer.flush(120)
    return produced, rows, time.monotonic() - started


# -- the gateway process ---------------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (MB) and CPU seconds (user + system) of a running process."""
    status = Path(f"/proc/{pid}/status").read_text()
    values = {}
    for line in status.splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    values["cpu_s"] = (int(stat[11]) + int(stat[12])) / ticks
    return values


def http(port: int, path: str) -> tuple[int, bytes, float]:
    started = time.perf_counter()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), time.perf_counter() - started
    except urllib.error.HTTPError as error:
        return error.code, error.read(), time.perf_counter() - started
    except OSError:
        return 0, b"", time.perf_counter() - started


@dataclass
class Run:
    label: str
    ready_s: float
    rss_mb: float
    peak_mb: float
    cpu_s: float
    get_ms: float
    events_ms: float
    list_ms: float
    status_ms: float
    store_mb: float


def run_gateway(label: str, tree: Path, env: dict[str, str], state_dir: Path | None, count: int,
                log_dir: Path, timeout_s: float) -> Run:
    port = free_loopback_port()
    argv = [sys.executable, "-m", "gateway", "--port", str(port), "--log-level", "WARNING"]
    if state_dir is not None:
        argv += ["--state-dir", str(state_dir)]
    out = open(log_dir / f"gateway-{label.replace(' ', '-')}.log", "ab")  # noqa: SIM115 (closed below)
    started = time.monotonic()
    process = subprocess.Popen(argv, cwd=tree, env={**os.environ, **env, "GATEWAY_API_TOKENS": TOKEN},
                               stdout=out, stderr=subprocess.STDOUT)
    out.close()
    try:
        while http(port, "/readyz")[0] != 200:
            if process.poll() is not None:
                raise RuntimeError(f"gateway ({label}) exited with {process.returncode}; see {log_dir}")
            if time.monotonic() - started > timeout_s:
                raise RuntimeError(f"gateway ({label}) not ready within {timeout_s}s")
            time.sleep(0.05)
        ready_s = time.monotonic() - started
        status = proc_status(process.pid)
        rng = random.Random(7)
        gets, pages, lists = [], [], []
        for _ in range(200):
            execution_id = f"exec_bench_{rng.randrange(count):08d}"
            code, _, elapsed = http(port, f"/rebalance/executions/{execution_id}")
            assert code == 200, (label, code)
            gets.append(elapsed)
            code, _, elapsed = http(port, f"/rebalance/executions/{execution_id}/events")
            pages.append(elapsed if code == 200 else float("nan"))  # a checkout before the endpoint: 404/405
            code, _, elapsed = http(port, f"/rebalance/executions?proposal_id=prop_bench_{rng.randrange(1000):04d}"
                                          f"&limit=50")
            assert code == 200, (label, code)
            lists.append(elapsed)
        code, _, status_elapsed = http(port, "/rebalance/executions?status=FILLED&limit=50")  # none is FILLED
        assert code == 200, (label, code)
        status_after = proc_status(process.pid)
        store = 0.0
        if state_dir is not None:
            store = sum(f.stat().st_size for f in state_dir.rglob("*") if f.is_file()) / 2**20
        return Run(label, ready_s, status["VmRSS"], status_after["VmHWM"], status["cpu_s"],
                   statistics.median(gets) * 1000, statistics.median(pages) * 1000, statistics.median(lists) * 1000,
                   status_elapsed * 1000, store)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def table(runs: list[Run], count: int, changes: int, rows: int, write_s: float) -> str:
    lines = [
        f"{count:,} executions: {changes:,} state changes and {rows:,} table rows on the topics "
        f"(written in {write_s:.0f} s). {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}.",
        "",
        "| gateway | ready after (s) | RSS at ready (MB) | peak RSS (MB) | CPU to ready (s) | GET p50 (ms) "
        "| events page p50 (ms) | list page p50 (ms) | list ?status= matching none (ms) | store on disk (MB) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        lines.append(f"| {run.label} | {run.ready_s:.1f} | {run.rss_mb:.0f} | {run.peak_mb:.0f} | {run.cpu_s:.1f} "
                     f"| {run.get_ms:.1f} | {run.events_ms:.1f} | {run.list_ms:.1f} | {run.status_ms:.1f} "
                     f"| {run.store_mb:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.read_model", description=__doc__.split("\n\n")[0])
    parser.add_argument("--executions", type=int, default=100_000, help="executions to write (default 100000)")
    parser.add_argument("--changes", type=int, default=4,
                        help="state changes per execution: the creation and the next ones (default 4)")
    parser.add_argument("--partitions", type=int, default=6, help="partitions of the topics (default 6)")
    parser.add_argument("--baseline-tree", type=Path, default=None,
                        help="another checkout whose `python -m gateway` to measure on the same topics")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds a gateway may take to be ready")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-read-model-"))
    try:
        with kafka_broker() as endpoint:
            bootstrap = endpoint.bootstrap_servers
            log(f"broker: {endpoint.description} at {bootstrap}")
            application_id = f"bench-rm-{uuid.uuid4().hex[:8]}"
            prefix = f"{application_id}."
            defaults = TopicNames.defaults(application_id, {})
            topics = TopicNames(**{f.name: n if (n := getattr(defaults, f.name)).startswith(prefix) else prefix + n
                                   for f in fields(TopicNames)})
            prepare_topics(AdminClient({"bootstrap.servers": bootstrap}), ProcessorConfig(
                kafka=KafkaSettings(bootstrap), application_id=application_id, instance_id="bench", state_dir=work,
                topics=topics, partitions=args.partitions, commit_interval_ms=100, batch_size=500,
                http_host="127.0.0.1", http_port=0, log_level="WARNING"))
            log(f"writing {args.executions:,} executions ({args.changes} state changes and a table row each)")
            changes, rows, write_s = write_executions(bootstrap, topics, args.executions, args.changes)
            env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "PROCESSOR_APPLICATION_ID": application_id,
                   **{f"TOPIC_{f.name.upper()}": getattr(topics, f.name) for f in fields(TopicNames)}}
            state = work / "gateway-state"
            runs = []
            for label in ("first start (store built)", "restart (store resumed)"):
                log(f"gateway: {label}")
                runs.append(run_gateway(label, ROOT, env, state, args.executions, work, args.timeout))
                log(f"  {runs[-1]}")
            if args.baseline_tree is not None:
                log(f"gateway of {args.baseline_tree}")
                runs.append(run_gateway(f"baseline ({args.baseline_tree.name})", args.baseline_tree, env, None,
                                        args.executions, work, args.timeout))
                log(f"  {runs[-1]}")
            print()
            print(table(runs, args.executions, changes, rows, write_s))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
