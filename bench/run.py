"""The benchmark suite: throughput, latency, gateway capacity and recovery, on one broker.

    .venv/bin/python -m bench.run                 # every section, default scale (< 10 minutes)
    .venv/bin/python -m bench.run --quick         # smaller scale, a few minutes
    .venv/bin/python -m bench.run --sections throughput,profile --executions 300

Starts ONE broker (`local_kafka.select.kafka_broker`: KAFKA_BOOTSTRAP_SERVERS wins) used by every
section, runs every contender as its own process against it, stops every process it started by
its PID, and prints a markdown results table at the end. Performance is measured here, never as
timed assertions in tests. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field, fields
from datetime import timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import testkit.streams as sf  # the tests' realistic stream generator
from execution_domain import OrderEvent, OrderEventType, parse_artifact
from kafka_client.settings import KafkaSettings
from local_kafka.broker import free_loopback_port
from local_kafka.select import kafka_broker
from processor.config import ProcessorConfig
from processor.topics import prepare_topics
from testkit.processor import ACTOR, DEFAULT_POLICY, T0
from wire import records as translate
from wire import serde
from wire.topics import TopicNames

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
SECTIONS = ("throughput", "profile", "latency", "gateway", "recovery")
TARGETS = {
    "processor_eps": 30_000, "vs_limit": 0.60, "vs_peer": 2.0, "event_p99_ms": 250, "create_p99_ms": 100,
}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- processes ------------------------------------------------------------------------------------


def peak_rss_mb(proc: subprocess.Popen) -> float:
    """The process's peak resident set size so far (VmHWM), in MB; NaN once it has exited."""
    try:
        status = Path(f"/proc/{proc.pid}/status").read_text()
    except OSError:
        return float("nan")
    kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), None)
    return float("nan") if kb is None else kb / 1024


class Procs:
    """Every process the bench starts; each stopped by its own PID."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.running: list[subprocess.Popen] = []

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        out = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=out,
                                stderr=subprocess.STDOUT)
        out.close()
        self.running.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, timeout_s: float = 60, sig: int = signal.SIGTERM) -> None:
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
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def wait_for(predicate, timeout_s: float, what: str, interval_s: float = 0.05) -> float:
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

    def env(self) -> dict[str, str]:
        return {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                **{f"TOPIC_{f.name.upper()}": getattr(self.topics, f.name) for f in fields(TopicNames)}}

    def spawn(self, procs: Procs, state_dir: Path, name: str, *, port: int, profile_to: Path | None = None,
              log_level: str = "WARNING") -> subprocess.Popen:
        args = ["-m", "processor", "--application-id", self.application_id, "--instance-id", "bench",
                "--state-dir", str(state_dir), "--partitions", str(self.partitions), "--commit-interval-ms", "100",
                "--batch-size", "500", "--http-port", str(port), "--log-level", log_level]
        if profile_to is not None:
            args = ["-m", "pyinstrument", "--interval", "0.002", "-r", "text", "--show-all", "-o", str(profile_to),
                    *args]
        return procs.start(name, [PY, *args], self.env())


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
    import re
    total = 0.0
    for line in log_path.read_text(errors="replace").splitlines():
        match = re.search(r"restored store executions/\d+: .* in ([0-9.]+)s", line)
        if match:
            total += float(match.group(1))
    return total


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


def measure_drain(admin: AdminClient, group: str, topic: str, partitions: int, total: int, proc: subprocess.Popen,
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


def wait_results(bootstrap: str, topic: str, count: int, timeout_s: float) -> None:
    wait_for(lambda: end_offsets(bootstrap, topic) >= count, timeout_s, f"{count} command results on {topic}", 0.3)


def event_items(events: list[OrderEvent]) -> list[tuple[bytes, bytes]]:
    return [(e.execution_id.encode(), serde.encode("OrderEvent", translate.order_event_to_record(e))) for e in events]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


# -- the run --------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, bootstrap: str, work: Path) -> None:
        self.args = args
        self.bootstrap = bootstrap
        self.work = work
        self.procs = Procs(work)
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self.rng = random.Random(args.seed)
        self.results: dict[str, Any] = {}
        self.run_id = uuid.uuid4().hex[:6]
        self.P = args.partitions

    # -- set-up: executions in the processor's state, one recorded stream ----------------------------

    def setup(self) -> None:
        a = self.args
        log(f"building {a.executions} executions (+{a.latency_executions} for latency) and their order events")
        self.plans = sf.build_executions(self.rng, a.executions, f"tp{self.run_id}")
        self.lat_plans = sf.build_executions(self.rng, a.latency_executions, f"lt{self.run_id}")
        events = sf.build_event_stream(self.rng, self.plans)
        if a.events and len(events) > a.events:
            events = events[: a.events]
        self.events = events
        self.lat_events = sf.build_event_stream(self.rng, self.lat_plans)
        self.app = App(self.bootstrap, f"bench-{self.run_id}", self.P)
        # The profiled twin shares the inputs (proposals, commands, the recorded stream), nothing else.
        t = self.app.topics
        self.twin = App(self.bootstrap, f"bench-{self.run_id}-prof", self.P, shared={
            "approved_proposals": t.approved_proposals, "execution_commands": t.execution_commands,
            "order_events": t.order_events})
        self.state = self.work / "state-processor"
        self.twin_state = self.work / "state-profiled"
        log(f"seeding executions through the processor (and its profiled twin): {len(self.plans) + len(self.lat_plans)}")
        procs = [self.app.spawn(self.procs, self.state, "seed-processor", port=0),
                 self.twin.spawn(self.procs, self.twin_state, "seed-twin", port=0)]
        started = time.monotonic()
        publish_and_create(self.bootstrap, self.app, self.plans + self.lat_plans)
        n = len(self.plans) + len(self.lat_plans)
        wait_results(self.bootstrap, self.app.topics.command_results, n, 300)
        wait_results(self.bootstrap, self.twin.topics.command_results, n, 300)
        log(f"seeded {n} executions in {time.monotonic() - started:.1f}s")
        for proc in procs:
            self.procs.stop(proc)
        # The peer's starting point: the created executions exactly as the processor stored them.
        self.seed_file = self.work / "peer-seed.jsonl"
        self._write_peer_seed()
        if not {"throughput", "profile"} & set(self.args.sections_list):
            # Unfolded, the recorded stream would sit in front of the latency section's events.
            self.events = []
        log(f"recording the stream: {len(self.events)} order events on {t.order_events}")
        p = producer(self.bootstrap)
        produce_all(p, t.order_events, event_items(self.events))
        self.total = end_offsets(self.bootstrap, t.order_events)
        dupes = len(self.events) - len({e.event_id for e in self.events})
        fills = sum(e.event_type in (OrderEventType.PARTIAL_FILL, OrderEventType.FILLED) for e in self.events)
        tickets = sum(len(plan.tickets) for plan in self.plans)
        self.results["stream"] = {"events": self.total, "executions": len(self.plans), "tickets": tickets,
                                  "fills": fills, "duplicates": dupes}

    def _write_peer_seed(self) -> None:
        from processor.runtime.store import PartitionStore
        with open(self.seed_file, "wb") as out:
            for partition in range(self.P):
                store = PartitionStore(self.state / "executions" / str(partition),
                                       self.app.topics.executions_changelog, partition)
                try:
                    for key, value in store.items(b"x/"):
                        out.write(key[2:] + b"\t" + value + b"\n")
                finally:
                    store.close()

    # -- 1. throughput ------------------------------------------------------------------------------

    def throughput(self) -> None:
        t = self.app.topics
        out = f"bench-{self.run_id}.passthrough-out"
        peer_out = f"bench-{self.run_id}.peer-out"
        self.admin.create_topics([NewTopic(out, self.P, 1), NewTopic(peer_out, self.P, 1)])
        timeout = self.args.contender_timeout

        log("throughput: the limit (raw transactional pass-through)")
        result_file = self.work / "limit.json"
        proc = self.procs.start("limit", [PY, "-m", "bench.passthrough", self.bootstrap, t.order_events, out,
                                          f"limit-{self.run_id}", "--result", str(result_file)])
        outside = measure_drain(self.admin, f"limit-{self.run_id}", t.order_events, self.P, self.total, proc, timeout)
        wait_for(result_file.exists, 30, "the pass-through's own timing")
        limit_rss = peak_rss_mb(proc)
        self.procs.stop(proc)
        # It drains the stream within a few looks from outside: timed inside (first record consumed
        # until the stream's end is committed), which the outside look bounds from below.
        inside = json.loads(result_file.read_text())
        self.results["limit"] = {**inside, "eps": inside["events"] / inside["seconds"], "outside_eps": outside["eps"],
                                 "rss_mb": limit_rss}
        log(f"  limit: {self.results['limit']['eps']:,.0f} events/s")

        log("throughput: the processor (real fold, exactly-once)")
        proc = self.app.spawn(self.procs, self.state, "processor-throughput", port=0)
        self.results["processor"] = measure_drain(self.admin, self.app.application_id, t.order_events, self.P,
                                                  self.total, proc, timeout)
        self.results["processor"]["rss_mb"] = peak_rss_mb(proc)
        self.procs.stop(proc)
        log(f"  processor: {self.results['processor']['eps']:,.0f} events/s")
        self.results["processor_outputs"] = end_offsets(self.bootstrap, t.execution_state_changes)

        log("throughput: the quixstreams peer (same fold, exactly-once, RocksDB state)")
        group = f"peer-{self.run_id}"
        proc = self.procs.start("peer", [PY, "-m", "bench.quix_peer", self.bootstrap, t.order_events, peer_out, group,
                                         str(self.work / "state-peer"), str(self.seed_file)])
        try:
            self.results["peer"] = measure_drain(self.admin, group, t.order_events, self.P, self.total, proc,
                                                 self.args.peer_seconds)
            self.results["peer"]["rss_mb"] = peak_rss_mb(proc)
        finally:
            self.procs.stop(proc)
        log(f"  peer: {self.results['peer']['eps']:,.0f} events/s")

    # -- 5. profile -----------------------------------------------------------------------------------

    def profile(self) -> None:
        log("profile: the processor's fold of the same stream under pyinstrument (its twin app)")
        out = self.work / "profile.txt"
        proc = self.twin.spawn(self.procs, self.twin_state, "processor-profiled", port=0, profile_to=out)
        result = measure_drain(self.admin, self.twin.application_id, self.app.topics.order_events, self.P, self.total,
                               proc, self.args.contender_timeout * 2)
        self.procs.stop(proc)
        wait_for(lambda: out.exists() and out.stat().st_size > 0, 30, "the profile to be written")
        self.results["profile"] = {"eps_profiled": result["eps"], "path": str(out)}
        log(f"  profiled run: {result['eps']:,.0f} events/s; profile in {out}")

    # -- 2. latency -----------------------------------------------------------------------------------

    def latency(self) -> None:
        port = free_loopback_port()
        proc = self.app.spawn(self.procs, self.state, "processor-latency", port=port)
        wait_for(lambda: http_get_status(port, "/readyz") == 200, 120, "processor ready")
        try:
            self.results["event_latency"] = self._event_latency()
            self.results["event_latency"].update(scrape_loop_metrics(port))
            if "gateway" in self.args.sections_list:
                self._gateway(proc)
        finally:
            self.procs.stop(proc)

    def _event_latency(self) -> dict[str, float]:
        rate, seconds = self.args.rate, self.args.latency_seconds
        events = self.lat_events[: int(rate * seconds)]
        log(f"latency: {len(events)} OMS events at {rate}/s -> state change visible to read_committed")
        topic = self.app.topics.execution_state_changes
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"lat-{uuid.uuid4().hex}",
                             "isolation.level": "read_committed", "enable.auto.commit": False,
                             "fetch.wait.max.ms": 5, "fetch.min.bytes": 1})
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1] for p in parts]
        consumer.assign([TopicPartition(topic, p, ends[p]) for p in parts])
        arrived: list[tuple[float, bytes]] = []
        stop = threading.Event()

        def read() -> None:
            while not stop.is_set():
                for m in consumer.consume(1000, timeout=0.02):
                    if m.error() is None:
                        arrived.append((time.perf_counter(), m.value()))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        time.sleep(1.0)
        p = producer(self.bootstrap, **{"linger.ms": 1})
        items = event_items(events)
        sent: dict[str, float] = {}
        started = time.perf_counter()
        for index, ((key, value), event) in enumerate(zip(items, events, strict=True)):
            due = started + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sent.setdefault(event.event_id, time.perf_counter())
            p.produce(self.app.topics.order_events, value, key)
            p.poll(0)
        p.flush(30)
        offered = len(items) / (time.perf_counter() - started)
        time.sleep(3.0)
        stop.set()
        reader.join(5)
        consumer.close()
        latencies = []
        for at, value in arrived:
            change = serde.decode("ExecutionStateChange", value, topic=topic, partition=0, offset=0)
            cause = change["cause"]["id"]
            if change["cause"]["kind"] == "ORDER_EVENT" and cause in sent:
                latencies.append((at - sent.pop(cause)) * 1000)
        result = {"offered_eps": offered, "changes": len(latencies), "p50": percentile(latencies, 50),
                  "p95": percentile(latencies, 95), "p99": percentile(latencies, 99), "max": max(latencies, default=0)}
        log(f"  event -> visible state change: p50 {result['p50']:.1f} ms, p95 {result['p95']:.1f} ms, "
            f"p99 {result['p99']:.1f} ms over {len(latencies)} changes")
        return result

    # -- 2b/3. gateway: create latency at 200/s, capacity at saturation --------------------------------

    def _gateway(self, processor: subprocess.Popen) -> None:
        a = self.args
        n_lat = int(a.create_rate * a.create_seconds)
        # Also at half the rate: below the machine's create capacity, so no queue builds up and the
        # latency is that of the path itself (three transactional hops), not of waiting in line.
        n_half = int(a.create_rate / 2 * a.create_seconds)
        n_cap = a.capacity_creates
        log(f"gateway: publishing {n_lat + n_half + n_cap} proposals for creates")
        plans = sf.build_executions(self.rng, n_lat + n_half + n_cap, f"gw{self.run_id}")
        publish_and_create(self.bootstrap, self.app, plans, creates=False)
        half_plans, plans = plans[:n_half], plans[n_half:]
        admin = self.admin
        total = end_offsets(self.bootstrap, self.app.topics.approved_proposals)
        wait_for(lambda: group_committed(admin, self.app.application_id, self.app.topics.approved_proposals,
                                         self.P) >= total, 120, "proposals stored", 0.2)
        port, token, secret = free_loopback_port(), uuid.uuid4().hex, uuid.uuid4().hex
        env = {**self.app.env(), "PROCESSOR_APPLICATION_ID": self.app.application_id, "GATEWAY_PORT": str(port),
               "GATEWAY_HOST": "127.0.0.1", "GATEWAY_API_TOKENS": token, "GATEWAY_WEBHOOK_SECRETS": secret,
               "GATEWAY_LOG_LEVEL": "WARNING"}
        gw = self.procs.start("gateway", [PY, "-m", "gateway"], env)
        try:
            wait_for(lambda: http_get_status(port, "/readyz") == 200, 90, "gateway ready", 0.2)
            from bench.load import create_capacity, create_latency, webhook_capacity
            for name, batch, rate in (("create_latency_half", half_plans, a.create_rate / 2),
                                      ("create_latency", plans[:n_lat], a.create_rate)):
                self.results[name] = r = asyncio.run(create_latency(port, token, batch, rate))
                log(f"  create at {rate}/s: p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms, "
                    f"{r['ok']}/{r['sent']} 201{r.get('other', '')}")
            self.results["create_capacity"] = asyncio.run(create_capacity(port, token, plans[n_lat:], a.capacity_seconds))
            log(f"  creates at saturation: {self.results['create_capacity']['rps']:.0f}/s")
            targets = [(plan.execution_id, [t.ticket_id for t in plan.tickets]) for plan in self.lat_plans]
            self.results["webhook_capacity"] = asyncio.run(webhook_capacity(port, secret, token, targets,
                                                                            a.capacity_seconds))
            log(f"  webhook events at saturation: {self.results['webhook_capacity']['rps']:.0f}/s")
            self.results["webhook_capacity"]["gateway_rss_mb"] = peak_rss_mb(gw)
        finally:
            self.procs.stop(gw)

    # -- 4. recovery ------------------------------------------------------------------------------------

    def recovery(self) -> None:
        n = self.args.recovery_executions
        app = App(self.bootstrap, f"bench-{self.run_id}-rec", self.P)
        log(f"recovery: writing {n} executions into {app.topics.executions_changelog}")
        templates = [tuple(line.split(b"\t", 1)) for line in self.seed_file.read_bytes().splitlines()[:50]]
        p = producer(self.bootstrap, **{"partitioner": "consistent_random"})
        size = 0
        for i in range(n):
            old, tmpl = templates[i % len(templates)]
            eid = f"exec_{uuid.uuid4().hex[:24]}"
            value = tmpl.replace(old, eid.encode())
            size += len(value)
            while True:
                try:
                    p.produce(app.topics.executions_changelog, value, f"x/{eid}".encode(), partition=i % self.P)
                    break
                except BufferError:
                    p.poll(0.05)
        p.flush(120)
        state = self.work / "state-recovery"
        port = free_loopback_port()
        started = time.monotonic()
        proc = app.spawn(self.procs, state, "processor-recovery", port=port, log_level="INFO")
        rebuild = wait_for(lambda: http_get_status(port, "/readyz") == 200, 300, "rebuild from the changelog", 0.02)
        log(f"  rebuild from changelog (empty state dir): {rebuild:.2f}s")
        time.sleep(1.0)
        rebuild_rss = peak_rss_mb(proc)
        self.procs.stop(proc, sig=signal.SIGKILL)
        proc = app.spawn(self.procs, state, "processor-recovery-restart", port=port, log_level="INFO")
        restart = wait_for(lambda: http_get_status(port, "/readyz") == 200, 300, "restart after SIGKILL", 0.02)
        self.procs.stop(proc)
        log(f"  restart after SIGKILL to ready: {restart:.2f}s")
        del started
        self.results["recovery"] = {"executions": n, "bytes": size, "rebuild_s": rebuild, "restart_s": restart,
                                    "rebuild_rss_mb": rebuild_rss,
                                    "rebuild_restore_s": restore_seconds(self.work / "processor-recovery.log"),
                                    "restart_restore_s": restore_seconds(self.work / "processor-recovery-restart.log"),
                                    "restart_rebuilt": "rebuilding" in (self.work / "processor-recovery-restart.log")
                                    .read_text()}

    # -- the report ----------------------------------------------------------------------------------

    def table(self, endpoint: str) -> str:
        r = self.results
        rows = []

        def row(metric: str, value: str, target: str = "", verdict: str = "") -> None:
            rows.append(f"| {metric} | {value} | {target} | {verdict} |")

        def check(value: float, target: float, higher: bool = True) -> str:
            if value != value:  # NaN
                return "n/a"
            ok = value >= target if higher else value <= target
            if ok:
                return "met"
            return f"missed by {abs(value - target) / target * 100:.0f} %"

        if "stream" in r:
            s = r["stream"]
            row("recorded stream", f"{s['events']:,} order events, {s['executions']} executions, {s['tickets']} tickets, "
                f"{s['fills']:,} fills, {s['duplicates']:,} duplicates")
        s = r.get("stream", {"events": 0})
        if "processor" in r:
            lim, proc = r["limit"]["eps"], r["processor"]["eps"]
            row("limit: raw transactional pass-through", f"{lim:,.0f} events/s (peak RSS {r['limit']['rss_mb']:.0f} MB)")
            row("processor: real fold, exactly-once",
                f"{proc:,.0f} events/s (peak RSS {r['processor']['rss_mb']:.0f} MB)", "≥ 30,000 events/s",
                check(proc, TARGETS["processor_eps"]))
            row("processor / limit", f"{proc / lim:.3f}", "≥ 0.60", check(proc / lim, TARGETS["vs_limit"]))
            if "peer" in r:
                peer = r["peer"]["eps"]
                part = (f" (bounded run: first {r['peer']['events']:,} of {s['events']:,} events)"
                        if r["peer"].get("incomplete") else "")
                row("peer: quixstreams, exactly-once, RocksDB",
                    f"{peer:,.0f} events/s{part} (peak RSS {r['peer'].get('rss_mb', float('nan')):.0f} MB)")
                row("processor / peer", f"{proc / peer:.2f}", "≥ 2.0", check(proc / peer, TARGETS["vs_peer"]))
        if "profile" in r:
            row("processor under pyinstrument (profile run)", f"{r['profile']['eps_profiled']:,.0f} events/s")
        if "event_latency" in r:
            e = r["event_latency"]
            row(f"event → visible state change at {e['offered_eps']:,.0f} events/s offered",
                f"p50 {e['p50']:.0f} ms, p95 {e['p95']:.0f} ms, p99 {e['p99']:.0f} ms ({e['changes']:,} changes; "
                f"processor: mean transaction {e.get('mean_batch_size', float('nan')):.0f} records, "
                f"mean commit {e.get('mean_commit_latency_ms', float('nan')):.0f} ms)",
                "p99 ≤ 250 ms", check(e["p99"], TARGETS["event_p99_ms"], higher=False))
        if "create_latency" in r:
            c = r["create_latency"]
            row(f"POST /rebalance/executions → 201 at {c['offered_rps']:.0f} req/s offered",
                f"p50 {c['p50']:.0f} ms, p99 {c['p99']:.0f} ms ({c['ok']}/{c['sent']} 201{c.get('other', '')})",
                "p99 ≤ 100 ms", check(c["p99"], TARGETS["create_p99_ms"], higher=False))
        if "create_latency_half" in r:
            c = r["create_latency_half"]
            row(f"POST /rebalance/executions → 201 at {c['offered_rps']:.0f} req/s offered (below capacity)",
                f"p50 {c['p50']:.0f} ms, p99 {c['p99']:.0f} ms ({c['ok']}/{c['sent']} 201{c.get('other', '')})")
        if "create_capacity" in r:
            c = r["create_capacity"]
            row("gateway creates at saturation", f"{c['rps']:,.0f} 201/s over {c['seconds']:.0f} s, "
                f"concurrency {c['concurrency']}, p99 {c['p99']:.0f} ms{c.get('other', '')}")
        if "webhook_capacity" in r:
            c = r["webhook_capacity"]
            row("gateway webhook events at saturation", f"{c['rps']:,.0f} 202/s over {c['seconds']:.0f} s, "
                f"concurrency {c['concurrency']}, p99 {c['p99']:.0f} ms{c.get('other', '')}; "
                f"gateway peak RSS {c.get('gateway_rss_mb', float('nan')):.0f} MB")
        if "recovery" in r:
            c = r["recovery"]
            row(f"rebuild from changelog, empty state dir ({c['executions']:,} executions, "
                f"{c['bytes'] / 1e6:.0f} MB)", f"{c['rebuild_s']:.1f} s to ready (restore {c['rebuild_restore_s']:.1f} s; "
                f"processor peak RSS {c['rebuild_rss_mb']:.0f} MB)")
            row(f"restart after SIGKILL ({c['executions']:,} executions in state)",
                f"{c['restart_s']:.1f} s to ready (restore {c['restart_restore_s']:.1f} s"
                + ("; store found past its changelog end and rebuilt, see log)" if c["restart_rebuilt"] else ")"))
        for name, error in r.get("errors", {}).items():
            row(f"{name}", f"FAILED: {error}")
        header = ["| measure | result | target | verdict |", "| --- | --- | --- | --- |"]
        return "\n".join(header + rows) + f"\n\nbroker: {endpoint}; partitions {self.P}; batch 500; commit interval 100 ms"


def environment(endpoint: str) -> str:
    import confluent_kafka
    try:
        import quixstreams
        quix = quixstreams.__version__
    except Exception:  # noqa: BLE001
        quix = "not installed"
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), "0")
    return (f"machine: {os.cpu_count()} CPUs ({cpu}), {int(mem) / 1024 / 1024:.1f} GiB; Python {platform.python_version()}; "
            f"confluent-kafka {confluent_kafka.__version__} / librdkafka {confluent_kafka.libversion()[0]}; "
            f"quixstreams {quix}; broker {endpoint}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--quick", action="store_true", help="small scale: a few minutes")
    parser.add_argument("--executions", type=int, help="executions in the recorded stream (default 500, quick 150)")
    parser.add_argument("--events", type=int, default=0, help="cut the recorded stream to this many events")
    parser.add_argument("--latency-executions", type=int, default=150)
    parser.add_argument("--rate", type=float, default=1000.0, help="offered order events/s in the latency section")
    parser.add_argument("--latency-seconds", type=float, help="default 10, quick 5")
    parser.add_argument("--create-rate", type=float, default=200.0)
    parser.add_argument("--create-seconds", type=float, help="default 10, quick 5")
    parser.add_argument("--capacity-seconds", type=float, help="default 8, quick 4")
    parser.add_argument("--capacity-creates", type=int, help="proposals available to the capacity run (default 3000)")
    parser.add_argument("--recovery-executions", type=int, help="default 100000, quick 20000")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--contender-timeout", type=float, default=240.0)
    parser.add_argument("--peer-seconds", type=float, help="bound on the peer's run (default 120, quick 45): "
                        "a slower peer is rated on the part of the stream it folded by then")
    parser.add_argument("--seed", type=int, default=20260218)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, profile)")
    args = parser.parse_args(argv)
    q = args.quick
    args.executions = args.executions or (150 if q else 500)
    args.latency_seconds = args.latency_seconds or (5 if q else 10)
    args.create_seconds = args.create_seconds or (5 if q else 10)
    args.capacity_seconds = args.capacity_seconds or (4 if q else 8)
    args.capacity_creates = args.capacity_creates or (1000 if q else 3000)
    args.peer_seconds = args.peer_seconds or (45 if q else 120)
    args.recovery_executions = args.recovery_executions or (20_000 if q else 100_000)
    args.sections_list = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(args.sections_list) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}")

    began = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    log(f"work directory {work}")
    with kafka_broker() as endpoint:
        log(f"broker: {endpoint.description}")
        bench = Bench(args, endpoint.bootstrap_servers, work)
        errors: dict[str, str] = {}
        try:
            bench.setup()
            for section in ("throughput", "profile", "latency", "recovery"):
                wanted = section in args.sections_list or (section == "latency" and "gateway" in args.sections_list)
                if not wanted:
                    continue
                try:
                    getattr(bench, section)()
                except Exception as error:  # noqa: BLE001  a failed section is reported, the others still run
                    log(f"section {section} failed: {error!r}")
                    errors[section] = f"{type(error).__name__}: {error}"
                    bench.procs.stop_all()
        finally:
            bench.procs.stop_all()
        bench.results["errors"] = errors
        del bench.admin  # librdkafka handles go before the broker does
        print()
        print(environment(endpoint.description))
        print(f"command: {' '.join([Path(PY).name, '-m', 'bench.run', *(argv if argv is not None else sys.argv[1:])])}"
              f"; wall time {time.monotonic() - began:.0f} s")
        print()
        print(bench.table(endpoint.description))
        if "profile" in bench.results:
            lines = Path(bench.results["profile"]["path"]).read_text().splitlines()
            print("\nprofile (pyinstrument, top of the call tree):")
            print("\n".join(lines[:60]))
        (work / "results.json").write_text(json.dumps(bench.results, indent=1, default=str))
    if not args.keep:
        import shutil
        shutil.rmtree(work / "state-recovery", ignore_errors=True)
    log(f"results and logs in {work}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
