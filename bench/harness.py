"""What every bench section uses: processes started and stopped by PID, one processor application
(its topics and its process), the Kafka look-ups the measures are taken with, and the workload
(proposals, creates, order events). Bench only.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

import testkit.streams as sf  # the tests' realistic stream generator
from execution_domain import OrderEvent, parse_artifact
from kafka_client.settings import KafkaSettings
from processor.config import ProcessorConfig
from processor.topics import prepare_topics
from testkit.processor import ACTOR, DEFAULT_POLICY, T0
from wire import records as translate
from wire import serde
from wire.topics import TopicNames

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
T = TypeVar("T")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- processes ------------------------------------------------------------------------------------


Process = subprocess.Popen[bytes]


def _status_mb(pid: int, field_name: str) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return float("nan")
    kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith(field_name)), None)
    return float("nan") if kb is None else kb / 1024


def peak_rss_mb(proc: Process) -> float:
    """The process's peak resident set size so far (VmHWM), in MB; NaN once it has exited."""
    return _status_mb(proc.pid, "VmHWM:")


def rss_mb(proc: Process) -> float:
    """The process's resident set size now (VmRSS), in MB; NaN once it has exited."""
    return _status_mb(proc.pid, "VmRSS:")


class Procs:
    """Every process the bench starts; each stopped by its own PID."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.running: list[Process] = []

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Process:
        out = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=out,
                                stderr=subprocess.STDOUT)
        out.close()
        self.running.append(proc)
        return proc

    def stop(self, proc: Process, timeout_s: float = 60, sig: int = signal.SIGTERM) -> None:
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if proc in self.running:
            self.running.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.running)):
            self.stop(proc, 30)


def http_get_status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.05) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if predicate():
            return time.monotonic() - started
        time.sleep(interval_s)
    raise RuntimeError(f"timed out after {timeout_s}s waiting for {what}")


# -- one processor application (topics, process) --------------------------------------------------


@dataclass
class App:
    bootstrap: str
    application_id: str
    partitions: int
    shared: dict[str, str] = field(default_factory=dict)  # TopicNames field -> a topic of another app

    def __post_init__(self) -> None:
        prefix = f"{self.application_id}."
        defaults = TopicNames.defaults(self.application_id, {})
        names = {f.name: n if (n := getattr(defaults, f.name)).startswith(prefix) else prefix + n
                 for f in fields(TopicNames)}
        names.update(self.shared)
        self.topics = TopicNames(**names)
        prepare_topics(AdminClient({"bootstrap.servers": self.bootstrap}), self.config(Path("unused")))

    def config(self, state_dir: Path) -> ProcessorConfig:
        return ProcessorConfig(
            kafka=KafkaSettings(self.bootstrap), application_id=self.application_id, instance_id="bench",
            state_dir=state_dir, topics=self.topics, partitions=self.partitions, commit_interval_ms=100,
            batch_size=500, http_host="127.0.0.1", http_port=0, log_level="WARNING")

    def folded(self, admin: AdminClient) -> int:
        """Order events the application's group has folded and committed (its committed offsets)."""
        return group_committed(admin, self.application_id, self.topics.order_events, self.partitions)

    def env(self) -> dict[str, str]:
        return {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                **{f"TOPIC_{f.name.upper()}": getattr(self.topics, f.name) for f in fields(TopicNames)}}

    def spawn(self, procs: Procs, state_dir: Path, name: str, *, port: int, profile_to: Path | None = None,
              log_level: str = "WARNING", instance_id: str = "bench") -> Process:
        args = ["-m", "processor", "--application-id", self.application_id, "--instance-id", instance_id,
                "--state-dir", str(state_dir), "--partitions", str(self.partitions), "--commit-interval-ms", "100",
                "--batch-size", "500", "--http-port", str(port), "--log-level", log_level]
        if profile_to is not None:
            args = ["-m", "pyinstrument", "--interval", "0.002", "-r", "text", "--show-all", "-o", str(profile_to),
                    *args]
        return procs.start(name, [PY, *args], self.env())


def metric_total(port: int, name: str) -> float:
    """The sum of every series of one metric a running processor exposes (0 when it does not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    return sum(float(line.rpartition(" ")[2]) for line in text.splitlines()
               if not line.startswith("#") and line.split("{")[0].split(" ")[0] == name)


def scrape_loop_metrics(port: int) -> dict[str, float]:
    """Mean transaction size and commit time of a running processor, from its /metrics."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return {}
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, _, value = line.rpartition(" ")
        for metric, exposed in (("batch_size", "processor_batch_records"), ("commit_latency_ms", "processor_commit_latency_ms")):
            for part in ("sum", "count"):
                if name.split("{")[0] == f"{exposed}_{part}":
                    values[f"{metric}_{part}"] = values.get(f"{metric}_{part}", 0.0) + float(value)
    out = {}
    for metric in ("batch_size", "commit_latency_ms"):
        if values.get(f"{metric}_count"):
            out[f"mean_{metric}"] = values[f"{metric}_sum"] / values[f"{metric}_count"]
    return out


def restore_seconds(log_path: Path) -> float:
    """Sum of the 'restored store executions/p: ... in Xs' times a processor logged."""
    return sum(float(m.group(2)) for m in _restores(log_path))


def restored_records(log_path: Path) -> int:
    """Sum of the changelog records the 'restored store executions/p: N changelog records' lines name."""
    return sum(int(m.group(1)) for m in _restores(log_path))


def _restores(log_path: Path) -> list[re.Match[str]]:
    pattern = re.compile(r"restored store executions/\d+: (\d+) changelog records .* in ([0-9.]+)s")
    return [m for line in log_path.read_text(errors="replace").splitlines() if (m := pattern.search(line))]


def group_committed(admin: AdminClient, group: str, topic: str, partitions: int) -> int:
    request = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(partitions)])]
    result = admin.list_consumer_group_offsets(request, request_timeout=10)[group].result()
    return sum(max(tp.offset, 0) for tp in result.topic_partitions)


def end_offsets(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"ends-{uuid.uuid4().hex}"})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
                   for p in parts)
    finally:
        consumer.close()


def measure_drain(admin: AdminClient, group: str, topic: str, partitions: int, total: int, proc: Process,
                  timeout_s: float) -> dict[str, float]:
    """Events/s of a contender: from the first committed progress of its group to the whole stream
    committed (startup, group join and restore excluded alike for every contender)."""
    deadline = time.monotonic() + timeout_s
    last_zero = time.monotonic()  # the last look that saw no progress: work began after it
    done = 0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"contender exited with {proc.returncode} (see its log)")
        looked = time.monotonic()
        done = group_committed(admin, group, topic, partitions)
        if done == 0:
            last_zero = looked
        elif done >= total:
            elapsed = time.monotonic() - last_zero
            return {"events": total, "seconds": elapsed, "eps": total / elapsed}
        time.sleep(0.02)
    if done == 0:
        raise RuntimeError(f"group {group} made no progress in {timeout_s}s")
    elapsed = time.monotonic() - last_zero
    return {"events": done, "seconds": elapsed, "eps": done / elapsed, "incomplete": 1}


# -- the workload -----------------------------------------------------------------------------------


def producer(bootstrap: str, **extra: Any) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "enable.idempotence": True,
                     "linger.ms": 5, "compression.type": "lz4", "queue.buffering.max.messages": 500_000, **extra})


def produce_all(p: Producer, topic: str, items: list[tuple[bytes, bytes]]) -> None:
    for key, value in items:
        while True:
            try:
                p.produce(topic, value, key)
                break
            except BufferError:
                p.poll(0.05)
    p.flush(120)


def publish_and_create(bootstrap: str, app: App, plans: list[sf.PlannedExecution], *, dry_run: bool = False,
                       creates: bool = True) -> None:
    """Proposals, then (once stored by the running processor) one create command per plan."""
    p = producer(bootstrap)
    produce_all(p, app.topics.approved_proposals, [
        (plan.raw["proposal_id"].encode(),
         serde.encode("ApprovedProposal", translate.artifact_to_record(parse_artifact(plan.raw)))) for plan in plans])
    if not creates:
        return
    # The processor folds proposals and commands in its own order per partition: wait for the proposals.
    admin = AdminClient({"bootstrap.servers": bootstrap})
    total = end_offsets(bootstrap, app.topics.approved_proposals)
    wait_for(lambda: group_committed(admin, app.application_id, app.topics.approved_proposals, app.partitions) >= total,
             120, "proposals stored", 0.2)
    policy = translate.policy_to_record(translate.policy_from_record({**DEFAULT_POLICY, "dry_run": dry_run}))
    items = []
    for index, plan in enumerate(plans):
        plan.command_id = f"cmd-{uuid.uuid4().hex[:12]}"
        plan.issued_at = T0 + timedelta(seconds=index + 1)
        command = {
            "command_id": plan.command_id, "command_type": "CREATE_EXECUTION", "execution_id": plan.execution_id,
            "correlation_id": f"corr-{plan.command_id}", "issued_at": plan.issued_at,
            "payload": {"idempotency_key": plan.key, "request_hash": "sha256:gateway-copy",
                        "proposal_id": plan.raw["proposal_id"], "version_no": plan.raw["version_no"],
                        "execution_policy": policy, "actor": ACTOR, "artifact": None},
        }
        items.append((plan.execution_id.encode(), serde.encode("ExecutionCommand", command)))
    produce_all(p, app.topics.execution_commands, items)


def event_items(events: list[OrderEvent]) -> list[tuple[bytes, bytes]]:
    return [(e.execution_id.encode(), serde.encode("OrderEvent", translate.order_event_to_record(e))) for e in events]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]



# -- reading what was committed ---------------------------------------------------------------------


def read_committed(bootstrap: str, topic: str, keep: Callable[[Message], T | None], timeout_s: float = 300) -> list[T]:
    """`keep(message)` of every committed record of the topic (read_committed, every partition, from
    the start to the end seen when called), those that are not None, in each partition's order."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{uuid.uuid4().hex}",
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "enable.partition.eof": True, "fetch.max.bytes": 64 * 1024 * 1024})
    kept: list[T] = []
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1] for p in parts}
        remaining = {p for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, p, 0) for p in remaining])
        deadline = time.monotonic() + timeout_s
        while remaining:
            if time.monotonic() > deadline:
                raise RuntimeError(f"could not read {topic} to its end in {timeout_s}s: partitions {sorted(remaining)}")
            for message in consumer.consume(5000, timeout=0.5):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        offset = message.offset()
                        if offset is not None and offset >= ends[message.partition()]:
                            remaining.discard(message.partition())
                        continue
                    raise RuntimeError(f"reading {topic}: {error}")
                value = keep(message)
                if value is not None:
                    kept.append(value)
    finally:
        consumer.close()
    return kept


class CommandResults:
    """The committed command results of one application, read in the background: command_id -> outcome."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"results-{uuid.uuid4().hex}",
                                   "isolation.level": "read_committed", "enable.auto.commit": False,
                                   "auto.offset.reset": "earliest"})
        self._consumer.subscribe([topic])
        self._topic = topic
        self._codec = serde.codec("CommandResult")
        self.outcomes: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="command-results", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                for message in self._consumer.consume(1000, timeout=0.1):
                    if message.error() is None:
                        result = self._codec.decode(message.value() or b"", topic=self._topic, partition=0, offset=0)
                        self.outcomes[result["command_id"]] = result["outcome"]
        finally:
            self._consumer.close()

    def wait(self, command_ids: Iterable[str], timeout_s: float) -> dict[str, str]:
        """Each command's outcome, once all are in (RuntimeError if they are not within the timeout)."""
        ids = list(command_ids)
        wait_for(lambda: all(i in self.outcomes for i in ids), timeout_s, f"{len(ids)} command results on {self._topic}",
                 0.05)
        return {i: self.outcomes[i] for i in ids}

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
