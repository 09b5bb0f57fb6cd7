"""The processor's own cost per order event, without a broker: the real tasks and stores, fed in process.

`bench.run`'s throughput section measures the processor end to end against the broker on the same
two cores; this measures only what the processor's Python does per record (decode, fold, state
reads and writes, output encoding, changelog records, RocksDB batches at commit), with the
Kafka transaction replaced by a stand-in that counts what would be produced. It is the ceiling
of one process, and the place to profile it (`--profile`), reproducibly and without noise from
the broker.

The stream is `bench.run`'s (`testkit.streams`: executions of 2-4 tickets, per-fill and
cumulative reports, duplicates), created through the processor's own create path (proposal,
create command, admission request and decision), then folded in transactions of `--batch`
records as the loop does.

    .venv/bin/python -m bench.in_process --executions 500
    .venv/bin/python -m bench.in_process --executions 500 --profile 30

It prints the pure domain fold of the same stream first (`domain_fold`): the floor under both.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import pstats
import random
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from execution_domain import (
    Actor,
    Execution,
    InMemoryHistory,
    OrderEvent,
    RequestOrigin,
    apply_order_event,
    create_execution,
    mark_released,
    parse_artifact,
)
from kafka_client.partitioning import expected_partition
from kafka_client.settings import KafkaSettings
from processor.config import ProcessorConfig
from processor.metrics import ProcessorMetrics
from processor.runtime.store import PartitionStore, StoreMemory
from processor.runtime.task import Task, TaskId
from processor.topics import subtopologies
from processor.topology import ServiceTopology
from testkit import streams as sf
from testkit.processor import ACTOR, DEFAULT_POLICY, T0
from testkit.records import ConsumedRecord
from wire import formats, serde
from wire import records as translate
from wire.topics import TopicNames


@dataclass
class CountingTransaction:
    """Stands in for KafkaTransaction: keeps the records produced (to feed the next hop) and
    reports each delivered at once, at consecutive offsets per topic partition."""

    partitions: int
    produced: list[tuple[str, int, bytes | None, bytes | None]] = field(default_factory=list)
    bytes_out: int = 0
    _offsets: dict[tuple[str, int], int] = field(default_factory=lambda: defaultdict(int))
    _deliveries: list[tuple[Callable[[Any, Any], None], ConsumedRecord]] = field(default_factory=list)
    _partition_of: dict[bytes, int] = field(default_factory=dict)

    def produce(self, topic: str, value: bytes | None, *, key: bytes | None = None, headers: Any = None,
                partition: int | None = None, on_delivery: Callable[[Any, Any], None] | None = None) -> None:
        if partition is None:  # the partitioner's cost is librdkafka's (C), not the processor's: memoised here
            partition = self._partition_of.get(key or b"")
            if partition is None:
                partition = self._partition_of[key or b""] = expected_partition(key or b"", self.partitions)
        offset = self._offsets[(topic, partition)]
        self._offsets[(topic, partition)] = offset + 1
        self.produced.append((topic, partition, key, value))
        self.bytes_out += len(value or b"") + len(key or b"")
        if on_delivery is not None:
            self._deliveries.append((on_delivery, ConsumedRecord(topic, partition, offset, key or b"", value or b"")))

    def commit(self) -> None:
        for callback, record in self._deliveries:
            callback(None, record)
        self._deliveries.clear()

    def take(self, topic: str) -> list[tuple[int, bytes | None, bytes | None]]:
        taken = [(p, k, v) for t, p, k, v in self.produced if t == topic]
        self.produced = [item for item in self.produced if item[0] != topic]
        return taken


class InProcessProcessor:
    """Both subtopologies' tasks for every partition, on real RocksDB stores."""

    def __init__(self, work: Path, partitions: int) -> None:
        application_id = f"inproc-{uuid.uuid4().hex[:6]}"
        self.topics = TopicNames.defaults(application_id, {})
        self.config = ProcessorConfig(
            kafka=KafkaSettings("unused:9092"), application_id=application_id, instance_id="bench",
            state_dir=work, topics=self.topics, partitions=partitions, commit_interval_ms=100, batch_size=500,
            http_host="127.0.0.1", http_port=0, log_level="WARNING")
        self.partitions = partitions
        topology = ServiceTopology(self.config, ProcessorMetrics(), formats.from_environment())
        memory = StoreMemory()
        self.tasks: dict[tuple[str, int], Task] = {}
        for sub in subtopologies(self.config):
            for partition in range(partitions):
                store = PartitionStore(work / sub.name / str(partition), sub.changelog_topic, partition, memory)
                task = topology.build_task(TaskId(sub.name, partition), store, partitions)
                task.begin_restore()
                task.initialize()
                for topic in sub.input_topics:
                    self.tasks[(topic, partition)] = task
        self._offsets: dict[tuple[str, int], int] = defaultdict(int)
        self.txn = CountingTransaction(partitions)

    def record(self, topic: str, key: bytes, value: bytes, partition: int | None = None) -> ConsumedRecord:
        partition = expected_partition(key, self.partitions) if partition is None else partition
        offset = self._offsets[(topic, partition)]
        self._offsets[(topic, partition)] = offset + 1
        return ConsumedRecord(topic, partition, offset, key, value)

    def fold(self, records: Iterable[ConsumedRecord]) -> int:
        touched: dict[int, Task] = {}
        count = 0
        for record in records:
            task = self.tasks[(record.topic(), record.partition())]
            touched[id(task)] = task
            task.process(record, self.txn)  # type: ignore[arg-type]
            count += 1
        for task in touched.values():
            task.prepare_commit(self.txn)  # type: ignore[arg-type]
        self.txn.commit()
        for task in touched.values():
            task.post_commit()
        return count

    def forward(self, topic: str) -> list[ConsumedRecord]:
        """What the last transactions produced to an internal topic, as records of it."""
        return [self.record(topic, key or b"", value or b"", partition) for partition, key, value in self.txn.take(topic)]

    def close(self) -> None:
        for task in {id(t): t for t in self.tasks.values()}.values():
            task.close()


def create_executions(proc: InProcessProcessor, plans: list[sf.PlannedExecution]) -> None:
    t = proc.topics
    proc.fold(proc.record(t.approved_proposals, plan.raw["proposal_id"].encode(),
                          serde.encode("ApprovedProposal", translate.artifact_to_record(parse_artifact(plan.raw))))
              for plan in plans)
    policy = translate.policy_to_record(translate.policy_from_record(dict(DEFAULT_POLICY)))
    commands = []
    for index, plan in enumerate(plans):
        plan.command_id = command_id = f"cmd-{index}"
        plan.issued_at = T0 + timedelta(seconds=index + 1)
        commands.append(proc.record(t.execution_commands, plan.execution_id.encode(), serde.encode("ExecutionCommand", {
            "command_id": command_id, "command_type": "CREATE_EXECUTION", "execution_id": plan.execution_id,
            "correlation_id": f"corr-{command_id}", "issued_at": plan.issued_at,
            "payload": {"idempotency_key": plan.key, "request_hash": "sha256:gateway-copy",
                        "proposal_id": plan.raw["proposal_id"], "version_no": plan.raw["version_no"],
                        "execution_policy": policy, "actor": ACTOR, "artifact": None},
        })))
    proc.fold(commands)
    proc.fold(proc.forward(t.admission_requests))
    proc.fold(proc.forward(t.admission_decisions))
    results = proc.txn.take(t.command_results)
    outcomes = [serde.decode("CommandResult", value or b"", topic=t.command_results, partition=p, offset=0)["outcome"]
                for p, _, value in results]
    created = outcomes.count("CREATED")
    if created < len(plans):
        raise RuntimeError(f"only {created} of {len(plans)} executions created")
    proc.txn.produced.clear()


def order_event_records(proc: InProcessProcessor, events: list[OrderEvent]) -> list[ConsumedRecord]:
    topic = proc.topics.order_events
    return [proc.record(topic, event.execution_id.encode(),
                        serde.encode("OrderEvent", translate.order_event_to_record(event))) for event in events]


def domain_fold(plans: list[sf.PlannedExecution], events: list[OrderEvent]) -> dict[str, float]:
    """The pure domain fold of the same stream: `apply_order_event` and `mark_released` over
    executions in memory (`InMemoryHistory`), nothing encoded, stored or produced. The floor any
    processor built on the domain pays per event."""
    executions: dict[str, tuple[Execution, InMemoryHistory]] = {}
    for index, plan in enumerate(plans):
        artifact = parse_artifact(plan.raw)
        created = create_execution(plan.execution_id, artifact, translate.policy_from_record(dict(DEFAULT_POLICY)),
                                   T0 + timedelta(seconds=index + 1), RequestOrigin(Actor(**ACTOR)))
        execution = created.execution
        for ticket in created.tickets_to_submit:
            execution = mark_released(execution, ticket.ticket_id, T0).execution
        executions[plan.execution_id] = (execution, InMemoryHistory())
    started = time.process_time()
    for event in events:
        execution, history = executions[event.execution_id]
        outcome = apply_order_event(execution, event, history)
        history.remember(outcome.remembered)
        execution = outcome.execution
        for ticket in outcome.tickets_to_submit:
            execution = mark_released(execution, ticket.ticket_id, event.occurred_at).execution
        executions[event.execution_id] = (execution, history)
    seconds = time.process_time() - started
    return {"events": len(events), "cpu_seconds": seconds, "cpu_eps": len(events) / seconds,
            "us_per_event": seconds / len(events) * 1e6}


def run(executions: int, partitions: int, batch: int, seed: int, profile_top: int) -> dict[str, float]:
    rng = random.Random(seed)
    plans = sf.build_executions(rng, executions, "ip")
    events = sf.build_event_stream(rng, plans)
    return run_stream(plans, events, partitions, batch, profile_top)


def run_stream(plans: list[sf.PlannedExecution], events: list[OrderEvent], partitions: int = 6, batch: int = 500,
               profile_top: int = 0, changes: list[bytes] | None = None) -> dict[str, float]:
    """The processor's tasks over `events` of the executions `plans` (created first, untimed). The
    stream's deliberate anomalies (reordered cumulative reports) are logged as warnings by the
    processor: silenced here, as they are in the bench's processes (`--log-level WARNING` prints them
    to their own logs)."""
    logging.disable(logging.WARNING)
    try:
        return _run_stream(plans, events, partitions, batch, profile_top, changes)
    finally:
        logging.disable(logging.NOTSET)


def _run_stream(plans: list[sf.PlannedExecution], events: list[OrderEvent], partitions: int, batch: int,
                profile_top: int, changes: list[bytes] | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-in-process-") as work:
        proc = InProcessProcessor(Path(work), partitions)
        create_executions(proc, plans)
        records = order_event_records(proc, events)
        batches = [records[i:i + batch] for i in range(0, len(records), batch)]
        profiler = cProfile.Profile() if profile_top else None
        proc.txn.bytes_out = 0
        started, cpu_started = time.perf_counter(), time.process_time()
        if profiler is not None:
            profiler.enable()
        for chunk in batches:
            proc.fold(chunk)
            if changes is not None:  # (the tests' check: the same state changes as the reference fold)
                changes += [value or b"" for _, _, value in proc.txn.take(proc.topics.execution_state_changes)]
            proc.txn.produced.clear()
        if profiler is not None:
            profiler.disable()
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started  # what the machine's other load does not inflate much
        bytes_out = proc.txn.bytes_out
        proc.close()
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(profile_top)
    return {"events": len(records), "seconds": seconds, "eps": len(records) / seconds,
            "cpu_seconds": cpu_seconds, "cpu_eps": len(records) / cpu_seconds,
            "us_per_event": cpu_seconds / len(records) * 1e6, "bytes_out_per_event": bytes_out / len(records)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.in_process", description=__doc__.split("\n\n")[0])
    parser.add_argument("--executions", type=int, default=500)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--batch", type=int, default=500, help="records per transaction (the loop's batch size)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print the N costliest functions (cProfile)")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    plans = sf.build_executions(rng, args.executions, "ip")
    events = sf.build_event_stream(rng, plans)
    domain = domain_fold(plans, events)
    print(f"pure domain fold: {domain['cpu_eps']:,.0f} events per CPU second ({domain['us_per_event']:.1f} µs/event)")
    result = run_stream(plans, events, args.partitions, args.batch, args.profile)
    print(f"{result['events']:,} order events in {result['seconds']:.2f}s ({result['cpu_seconds']:.2f}s CPU): "
          f"{result['eps']:,.0f} events/s wall, {result['cpu_eps']:,.0f} per CPU second "
          f"({result['us_per_event']:.1f} µs CPU/event), {result['bytes_out_per_event']:,.0f} bytes produced per event")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
