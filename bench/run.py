"""The benchmark suite: throughput, latency, gateway capacity, recovery, history and soak, on one broker.

    .venv/bin/python -m bench.run                 # every section, default scale
    .venv/bin/python -m bench.run --quick         # smaller scale
    .venv/bin/python -m bench.run --sections throughput,profile --executions 300
    .venv/bin/python -m bench.run --sections history,soak

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
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition
from confluent_kafka.admin import AdminClient

import testkit.streams as sf  # the tests' realistic stream generator
from bench import history as hist
from bench import in_process, soak
from bench.harness import (
    PY,
    App,
    CommandResults,
    Process,
    Procs,
    end_offsets,
    event_items,
    group_committed,
    http_get_status,
    log,
    measure_drain,
    metric_total,
    peak_rss_mb,
    percentile,
    produce_all,
    producer,
    publish_and_create,
    read_committed,
    restore_seconds,
    restored_records,
    rss_mb,
    scrape_loop_metrics,
    wait_for,
)
from bench.peer_fold import seed_line
from execution_domain import OrderEventType
from kafka_client.topics import NewTopic
from local_kafka.broker import free_loopback_port
from local_kafka.select import kafka_broker
from processor.runtime.store import PartitionStore
from processor.state_codecs import DefinitionCodec, HeadCodec, LogEntryCodec
from wire import serde
from wire.formats import REGISTRY_URL_ENV

SECTIONS = ("throughput", "profile", "latency", "gateway", "recovery", "history", "soak")
NEEDS_SETUP = {"throughput", "profile", "latency", "gateway", "recovery"}  # the seeded executions and recorded stream
TARGETS = {
    "processor_eps": 30_000, "vs_limit": 0.60, "vs_peer": 2.0, "event_p99_ms": 250, "create_p99_ms": 100,
}


def check_stored(execution_id: str, records: list[tuple[bytes, bytes]]) -> None:
    """The records of one execution read back with the processor's codecs, as its store will."""
    by_key = dict(records)
    definition = DefinitionCodec().decode(by_key[f"d/{execution_id}".encode()])
    head = HeadCodec(lambda _: definition).decode(by_key[f"x/{execution_id}".encode()])
    entries = [LogEntryCodec(lambda _: definition).decode(value) for key, value in records if key.startswith(b"l/")]
    if definition.execution_id != execution_id or head.execution_id != execution_id or len(entries) != head.seq:
        raise RuntimeError(f"renamed execution {execution_id} does not read back as stored ({len(entries)} log entries, "
                           f"head at {head.seq})")


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
        # Two instances in one group share the work (both cores): their app has its own order-events
        # topic, filled only once both hold their partitions (a rebalance is not part of the figure).
        self.duo = App(self.bootstrap, f"bench-{self.run_id}-duo", self.P, shared={
            "approved_proposals": t.approved_proposals, "execution_commands": t.execution_commands})
        self.state = self.work / "state-processor"
        self.twin_state = self.work / "state-profiled"
        self.duo_state = self.work / "state-duo-a"
        log(f"seeding executions through the processor (and its profiled twin): {len(self.plans) + len(self.lat_plans)}")
        procs = [self.app.spawn(self.procs, self.state, "seed-processor", port=0),
                 self.twin.spawn(self.procs, self.twin_state, "seed-twin", port=0)]
        if "throughput" in self.args.sections_list:
            procs.append(self.duo.spawn(self.procs, self.duo_state, "seed-duo", port=0, instance_id="a"))
        started = time.monotonic()
        apps = [self.app, self.twin] + ([self.duo] if "throughput" in self.args.sections_list else [])
        readers = [CommandResults(self.bootstrap, app.topics.command_results) for app in apps]
        try:
            publish_and_create(self.bootstrap, self.app, self.plans + self.lat_plans)
            ids = [plan.command_id or "" for plan in self.plans + self.lat_plans]
            for reader in readers:
                outcomes = reader.wait(ids, 300)
                refused = {i: o for i, o in outcomes.items() if o != "CREATED"}
                if refused:
                    raise RuntimeError(f"{len(refused)} creates not CREATED, e.g. {next(iter(refused.items()))}")
        finally:
            for reader in readers:
                reader.close()
        log(f"seeded {len(ids)} executions in {time.monotonic() - started:.1f}s")
        for proc in procs:
            self.procs.stop(proc)
        # The peer's starting point: the created executions exactly as the processor stored them.
        self.seed_file = self.work / "peer-seed.tsv"
        self.templates = self._read_stored()
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

    def _read_stored(self) -> list[list[tuple[bytes, bytes]]]:
        """Write the peer's seed (each execution's definition and head as the processor stored them)
        and return the stored records of 50 executions (definition, head, log entries), for the recovery."""
        per_execution: dict[bytes, list[tuple[bytes, bytes]]] = {}
        with open(self.seed_file, "wb") as out:
            for partition in range(self.P):
                store = PartitionStore(self.state / "executions" / str(partition),
                                       self.app.topics.executions_changelog, partition)
                try:
                    definitions = {key[2:]: value for key, value in store.items(b"d/")}
                    for key, head in store.items(b"x/"):
                        eid = key[2:]
                        out.write(seed_line(eid.decode(), definitions[eid], head))
                        if len(per_execution) < 50:
                            per_execution[eid] = [(b"d/" + eid, definitions[eid]), (key, head),
                                                  *store.items(b"l/" + eid + b"/")]
                finally:
                    store.close()
        return list(per_execution.values())

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

        log("throughput: two processor instances in one group (both cores)")
        self.results["duo"] = self._duo(timeout)
        log(f"  two instances: {self.results['duo']['eps']:,.0f} events/s")

        log("throughput: the pure domain fold and the processor's tasks in process (no broker), same stream")
        self.results["domain_fold"] = in_process.domain_fold(self.plans, self.events)
        self.results["in_process"] = in_process.run_stream(self.plans, self.events, self.P)
        log(f"  pure domain fold: {self.results['domain_fold']['cpu_eps']:,.0f} events per CPU second; processor "
            f"in process: {self.results['in_process']['cpu_eps']:,.0f}")

        log("throughput: the quixstreams peer (same fold, exactly-once, RocksDB state)")
        group = f"peer-{self.run_id}"
        peer_side = f"bench-{self.run_id}.peer-side"
        self.admin.create_topics([NewTopic(peer_side, self.P, 1)])
        proc = self.procs.start("peer", [PY, "-m", "bench.quix_peer", self.bootstrap, t.order_events, peer_out,
                                         peer_side, group, str(self.work / "state-peer"), str(self.seed_file)])
        try:
            self.results["peer"] = measure_drain(self.admin, group, t.order_events, self.P, self.total, proc,
                                                 self.args.peer_seconds)
            self.results["peer"]["rss_mb"] = peak_rss_mb(proc)
        finally:
            self.procs.stop(proc)
        log(f"  peer: {self.results['peer']['eps']:,.0f} events/s")
        self.results["peer"].update(self._compare_peer(peer_out))
        log(f"  peer's state changes identical to the processor's: {self.results['peer']['same']:,} of "
            f"{self.results['peer']['compared']:,}")

    def _duo(self, timeout: float) -> dict[str, float]:
        """Two instances (state dirs a, b; b restores its partitions from the changelog), the stream
        produced once both are ready and hold partitions; measured like the single instance."""
        ports = [free_loopback_port(), free_loopback_port()]
        procs = [self.duo.spawn(self.procs, self.duo_state, "processor-duo-a", port=ports[0], instance_id="a"),
                 self.duo.spawn(self.procs, self.work / "state-duo-b", "processor-duo-b", port=ports[1],
                                instance_id="b")]
        try:
            def holding_partitions(port: int) -> bool:
                return http_get_status(port, "/readyz") == 200 and metric_total(port, "processor_assigned_partitions") > 0

            wait_for(lambda: all(holding_partitions(port) for port in ports), 120,
                     "both instances ready, each with partitions")
            produce_all(producer(self.bootstrap), self.duo.topics.order_events, event_items(self.events))
            result = measure_drain(self.admin, self.duo.application_id, self.duo.topics.order_events, self.P,
                                   self.total, procs[0], timeout)
            result["rss_mb"] = sum(peak_rss_mb(proc) for proc in procs)
        finally:
            for proc in procs:
                self.procs.stop(proc)
        return result

    def _compare_peer(self, peer_out: str) -> dict[str, int]:
        """The peer's state changes against the processor's of the same change id, byte for byte."""
        topic = self.app.topics.execution_state_changes

        def by_change(message: Message) -> tuple[str, bytes]:
            value = message.value() or b""
            return serde.decode("ExecutionStateChange", value, topic=topic, partition=0, offset=0)["change_id"], value

        processor = dict(read_committed(self.bootstrap, topic, by_change))
        peer = read_committed(self.bootstrap, peer_out, by_change)
        same = sum(processor.get(change_id) == value for change_id, value in peer)
        return {"compared": len(peer), "same": same}

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
                        arrived.append((time.perf_counter(), m.value() or b""))

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

    def _gateway(self, processor: Process) -> None:
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
        # Executions as the processor stores them once created (definition, head, the creation's and
        # release marks' log entries: processor.state_codecs), renamed. All of one in one partition.
        p = producer(self.bootstrap, **{"partitioner": "consistent_random"})
        size = records = 0
        for i in range(n):
            template = self.templates[i % len(self.templates)]
            old = template[0][0][2:]  # d/<execution_id>
            eid = f"exec_{uuid.uuid4().hex[:24]}".encode()
            renamed = [(key.replace(old, eid), value.replace(old, eid)) for key, value in template]
            if i < len(self.templates):
                check_stored(eid.decode(), renamed)
            for key, value in renamed:
                size += len(key) + len(value)
                records += 1
                while True:
                    try:
                        p.produce(app.topics.executions_changelog, value, key, partition=i % self.P)
                        break
                    except BufferError:
                        p.poll(0.05)
        p.flush(120)
        state = self.work / "state-recovery"
        port = free_loopback_port()
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
        self.results["recovery"] = {"executions": n, "records": records, "bytes": size, "rebuild_s": rebuild,
                                    "restart_s": restart, "rebuild_rss_mb": rebuild_rss,
                                    "rebuild_restore_s": restore_seconds(self.work / "processor-recovery.log"),
                                    "rebuild_records": restored_records(self.work / "processor-recovery.log"),
                                    "restart_restore_s": restore_seconds(self.work / "processor-recovery-restart.log"),
                                    "restart_rebuilt": "rebuilding" in (self.work / "processor-recovery-restart.log")
                                    .read_text()}
        if self.results["recovery"]["rebuild_records"] < records:
            raise RuntimeError(f"the rebuild restored {self.results['recovery']['rebuild_records']:,} of the {records:,} "
                               "changelog records written")

    # -- 6. history: one execution's fills, 100 to 100,000 -------------------------------------------

    def history(self) -> None:
        app = App(self.bootstrap, f"bench-{self.run_id}-hist", self.P)
        self.results["history"] = hist.run_history(self.bootstrap, app, self.procs, self.work / "state-history",
                                                   self.args.history_checkpoints, lambda: app.folded(self.admin))

    # -- 7. soak: steady realistic load, RSS over time ----------------------------------------------------

    def soak(self) -> None:
        a = self.args
        app = App(self.bootstrap, f"bench-{self.run_id}-soak", self.P)
        port = free_loopback_port()
        log(f"soak: {a.soak_rate:.0f} order events/s of executions created as it goes, for {a.soak_seconds:.0f} s; "
            f"the processor's RSS every {a.soak_sample_seconds:.0f} s")
        proc = app.spawn(self.procs, self.work / "state-soak", "processor-soak", port=port)

        def folded() -> int:
            return app.folded(self.admin)

        try:
            wait_for(lambda: http_get_status(port, "/readyz") == 200, 120, "processor ready")
            load = soak.SoakLoad(self.bootstrap, app, rate=a.soak_rate, seconds=a.soak_seconds, chunk=a.soak_chunk,
                                 seed=a.seed, prefix=f"soak{self.run_id}", rss=lambda: rss_mb(proc), folded=folded,
                                 sample_every_s=a.soak_sample_seconds)
            run = load.run()
            behind = run["produced"] - folded()
            caught_up = wait_for(lambda: folded() >= run["produced"], 120, "the processor to fold the rest", 0.2)
            metrics = scrape_loop_metrics(port)
            rss_peak = peak_rss_mb(proc)
        finally:
            self.procs.stop(proc)
        dead = len(read_committed(self.bootstrap, app.topics.dead_letters, lambda m: 1))
        summary = soak.rss_summary(load.samples)
        self.results["soak"] = {**run, **summary, **metrics, "behind_at_end": behind, "caught_up_s": caught_up,
                                "dead_letters": dead, "vmhwm_mb": rss_peak,
                                "samples": [[s.at_s, s.rss_mb, s.produced, s.folded] for s in load.samples]}
        log(f"  RSS {summary['rss_1min_mb']:.0f} MB after the first minute, {summary['rss_end_mb']:.0f} MB at the end "
            f"(× {summary['ratio']:.2f}); {run['produced']:,} events of {run['executions']:,} executions")

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
            if "duo" in r:
                duo = r["duo"]["eps"]
                row("processor, two instances in one group (both cores)",
                    f"{duo:,.0f} events/s (× {duo / proc:.2f} one instance; peak RSS {r['duo']['rss_mb']:.0f} MB "
                    "together)", "≥ 30,000 events/s", check(duo, TARGETS["processor_eps"]))
            if "in_process" in r:
                fold, inproc = r["domain_fold"], r["in_process"]
                row("pure domain fold (apply_order_event in memory, nothing encoded or stored)",
                    f"{fold['cpu_eps']:,.0f} events per CPU second ({fold['us_per_event']:.0f} µs/event)")
                row("processor's tasks in process, no broker (decode, fold, stores, encode; bench.in_process)",
                    f"{inproc['cpu_eps']:,.0f} events per CPU second ({inproc['us_per_event']:.0f} µs/event, "
                    f"{inproc['bytes_out_per_event']:,.0f} bytes produced per event)")
            if "peer" in r:
                peer = r["peer"]["eps"]
                part = (f" (bounded run: first {r['peer']['events']:,} of {s['events']:,} events)"
                        if r["peer"].get("incomplete") else "")
                row("peer: quixstreams, exactly-once, RocksDB",
                    f"{peer:,.0f} events/s{part} (peak RSS {r['peer'].get('rss_mb', float('nan')):.0f} MB); "
                    f"its state changes identical to the processor's: {r['peer']['same']:,} of {r['peer']['compared']:,}")
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
            row(f"rebuild from changelog, empty state dir ({c['executions']:,} executions, {c['records']:,} records, "
                f"{c['bytes'] / 1e6:.0f} MB)", f"{c['rebuild_s']:.1f} s to ready (restore {c['rebuild_restore_s']:.1f} s; "
                f"processor peak RSS {c['rebuild_rss_mb']:.0f} MB)")
            row(f"restart after SIGKILL ({c['executions']:,} executions in state)",
                f"{c['restart_s']:.1f} s to ready (restore {c['restart_restore_s']:.1f} s"
                + ("; store found past its changelog end and rebuilt, see log)" if c["restart_rebuilt"] else ")"))
        if "history" in r:
            h = r["history"]
            first, last = h["points"][0], h["points"][-1]
            at = ", ".join(f"{p['fills']:,}" for p in h["points"])
            with_commits = " / ".join(f"{p['eps']:,.0f}" for p in h["points"])
            row(f"history: one execution, events/s folding at {at} fills",
                " / ".join(f"{p['fold_eps']:,.0f}" for p in h["points"]) + f" (with commit gaps: {with_commits}); "
                f"state change {last['change_bytes']:.0f} B at {last['fills']:,} fills vs {first['change_bytes']:.0f} B "
                f"at {first['fills']:,}")
            row(f"history: events/s at {last['fills']:,} fills / at {first['fills']:,}",
                f"{h['ratio']:.2f} (with commit gaps {h['ratio_with_commits']:.2f})", f"≥ {hist.FLAT:.2f}",
                check(h["ratio"], hist.FLAT))
        if "soak" in r:
            k = r["soak"]
            row(f"soak: processor RSS over {k['seconds'] / 60:.0f} min at {k['offered_eps']:,.0f} events/s "
                f"({k['produced']:,} events, {k['executions']:,} executions created as it went)",
                f"{k['rss_1min_mb']:.0f} MB at {k['rss_1min_at_s']:.0f} s → {k['rss_end_mb']:.0f} MB at "
                f"{k['rss_end_at_s']:.0f} s (× {k['ratio']:.2f}; peak {k['rss_peak_mb']:.0f} MB); "
                f"{k['dead_letters']} dead letters, {k['behind_at_end']:,} events behind at the end",
                f"end within {soak.WITHIN:.0%} of the 1-minute figure",
                "met" if soak.within(k["ratio"]) else f"missed by {abs(k['ratio'] - 1) * 100 - soak.WITHIN * 100:.0f} points")
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
    parser.add_argument("--history-checkpoints", help="fills of the one execution at which the history section "
                        f"measures (default {','.join(map(str, hist.CHECKPOINTS))}, quick "
                        f"{','.join(map(str, hist.QUICK_CHECKPOINTS))})")
    parser.add_argument("--soak-seconds", type=float, help="length of the soak's load (default 600, quick 150)")
    parser.add_argument("--soak-rate", type=float, default=500.0, help="order events/s offered in the soak")
    parser.add_argument("--soak-chunk", type=int, default=25, help="executions the soak creates at a time")
    parser.add_argument("--soak-sample-seconds", type=float, help="RSS sampling interval (default 5, quick 3)")
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
    args.history_checkpoints = ([int(c) for c in args.history_checkpoints.split(",")] if args.history_checkpoints
                                else list(hist.QUICK_CHECKPOINTS if q else hist.CHECKPOINTS))
    if len(args.history_checkpoints) < 2 or args.history_checkpoints != sorted(set(args.history_checkpoints)) \
            or args.history_checkpoints[0] < 1:
        parser.error("--history-checkpoints: two or more increasing positive fill counts")
    args.soak_seconds = args.soak_seconds or (150 if q else 600)
    args.soak_sample_seconds = args.soak_sample_seconds or (3 if q else 5)
    if args.soak_seconds <= soak.FIRST_MINUTE_S + args.soak_sample_seconds:
        parser.error(f"--soak-seconds: more than the first minute ({soak.FIRST_MINUTE_S:.0f} s) and one sample")
    if os.environ.get(REGISTRY_URL_ENV, "").strip():
        parser.error(f"{REGISTRY_URL_ENV} is set: the bench encodes and decodes single-object records (wire.serde) and "
                     "measures that framing; unset it (bench/wire_formats.py measures the Confluent framing's cost)")
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
            if NEEDS_SETUP & set(args.sections_list):
                try:
                    bench.setup()
                except Exception as error:  # noqa: BLE001  reported; the sections that need no set-up still run
                    log(f"set-up failed: {error!r}")
                    errors["set-up"] = f"{type(error).__name__}: {error}"
                    bench.procs.stop_all()
            for section in ("throughput", "profile", "latency", "recovery", "history", "soak"):
                wanted = section in args.sections_list or (section == "latency" and "gateway" in args.sections_list)
                if not wanted or (section in NEEDS_SETUP and "set-up" in errors):
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
        if "history" in bench.results:
            print("\nhistory: one execution, one ticket, its fills on one key (window: the stage's last fills; "
                  "events/s from the state changes' producer timestamps; changelog: the transactions of the window)")
            print(hist.TABLE_HEADER)
            print("\n".join(hist.summary_row(point) for point in bench.results["history"]["points"]))
        if "soak" in bench.results:
            samples = [soak.Sample(*row) for row in bench.results["soak"]["samples"]]
            print(f"\nsoak: processor RSS every {args.soak_sample_seconds:.0f} s "
                  f"({min(x.rss_mb for x in samples):.0f}–{max(x.rss_mb for x in samples):.0f} MB): "
                  f"{soak.sparkline([x.rss_mb for x in samples])}")
            print(soak.soak_table(samples))
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
