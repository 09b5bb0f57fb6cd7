"""Drives real processor instances against the real broker: inputs in, committed outputs out.

A `ProcessorHarness` owns one set of uniquely named topics and an application id; it starts
processor instances (in threads, or as subprocesses that can be SIGKILLed), publishes
proposals, commands and order events as their producers would, and reads every output
topic with `read_committed` consumers. `ScriptedOms` plays the OMS through the Kafka
contract with the domain's `MockExecutionProvider`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from execution_domain import OrderEvent, execution_id_for_key, parse_artifact
from kafka_client.records import coordinates, decode_value, produce_headers
from kafka_client.settings import KafkaSettings
from local_kafka.broker import die_with_parent
from mock_oms.provider import MockExecutionProvider
from processor.app import ProcessorApp
from processor.config import ProcessorConfig
from processor.topics import prepare_topics
from wire import formats, serde
from wire import records as translate
from wire.topics import TOPICS, TopicNames
from wire.views import ExecutionView

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples" / "proposals"
T0 = datetime(2026, 2, 18, 10, 0, tzinfo=UTC)
DEFAULT_POLICY = {
    "time_in_force": "DAY", "order_type": "MARKET", "allow_partial_fills": True,
    "max_slippage_bps": "25", "dry_run": False, "critical_sells": "FUNDING", "partial_funding": "SCALE_DOWN",
}
ACTOR = {"requested_by": "advisor_001", "channel": "ADVISOR_APP"}

T = TypeVar("T")


def load_sample(name: str) -> dict[str, Any]:
    sample: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text())
    return sample


def wait_until(predicate: Callable[[], T | None], timeout_s: float = 30.0, interval_s: float = 0.05, what: str = "") -> T:
    """The predicate's first truthy value, polled every `interval_s`; AssertionError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what or predicate}")


def committed_records(bootstrap: str, topic: str, timeout_s: float = 30) -> list[Message]:
    """Every committed record of `topic`, read until *each* partition reports its end (stopping at
    the first end would miss records of another partition still being fetched); AssertionError if
    that takes longer than `timeout_s`."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{uuid.uuid4().hex}",
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "enable.partition.eof": True})
    try:
        partitions = set(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        records: list[Message] = []
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while at_end != partitions:
            assert time.monotonic() < deadline, f"{topic} not read to its end in {timeout_s} s (ends {sorted(at_end)})"
            for message in consumer.consume(1000, timeout=0.2):
                error, partition = message.error(), cast(int, message.partition())
                if error is None:
                    records.append(message)
                    at_end.discard(partition)
                elif error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(partition)
                else:
                    raise AssertionError(f"reading {topic}: {error}")
        return records
    finally:
        consumer.close()


def drain_until_quiet(poll: Callable[[float], int], quiet_s: float) -> None:
    """Call `poll(timeout)` (returning how many records it read) until nothing arrived for `quiet_s`."""
    last = time.monotonic()
    while time.monotonic() - last < quiet_s:
        if poll(0.2):
            last = time.monotonic()


@dataclass
class _SingleObject:
    """A `wire.formats.ValueCodec` of `serde`'s, looked up on every call."""

    name: str  # the wire schema

    def encode(self, record: Mapping[str, Any]) -> bytes:
        return serde.encode(self.name, record)

    def decode(self, data: bytes, *, topic: str, partition: int, offset: int) -> dict[str, Any]:
        return serde.decode(self.name, data, topic=topic, partition=partition, offset=offset)


class TopicReader:
    """Accumulates every committed record of some topics, from their beginning."""

    def __init__(self, bootstrap: str, topics: dict[str, str]) -> None:
        # topics: name -> wire schema name
        self._schemas = topics
        self._consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex}",
            "isolation.level": "read_committed", "enable.auto.commit": False,
        })
        metadata = self._consumer.list_topics(timeout=10)
        self._consumer.assign([
            TopicPartition(name, p, 0) for name in topics for p in metadata.topics[name].partitions
        ])
        self.records: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.raw: dict[str, list[Any]] = defaultdict(list)
        self._lock = threading.Lock()

    def poll(self, timeout_s: float = 0.2) -> int:
        with self._lock:
            messages = self._consumer.consume(1000, timeout=timeout_s)
            for message in messages:
                if message.error():
                    continue
                topic, _, _ = coordinates(message)
                self.raw[topic].append(message)
                self.records[topic].append(decode_value(self._codec(topic), message))
            return len(messages)

    def _codec(self, topic: str) -> formats.ValueCodec:
        """The topic's codec: either framing when a schema registry is configured (`wire.formats`), else
        this module's `serde` (single-object; tests of schema upgrades swap it for other schemas)."""
        if formats.default().registry is None:
            return _SingleObject(self._schemas[topic])
        kind = next(t.kind for t in TOPICS if t.value_schema == self._schemas[topic])
        return formats.value_codec(kind, topic)

    def drain(self, quiet_s: float = 1.0) -> None:
        """Read until nothing new arrived for `quiet_s`."""
        drain_until_quiet(self.poll, quiet_s)

    def close(self) -> None:
        self._consumer.close()


class Stoppable(Protocol):
    def stop(self) -> Any: ...


@dataclass
class RunningProcessor:
    app: ProcessorApp
    thread: threading.Thread

    def stop(self, timeout_s: float = 60) -> None:
        self.app.request_stop()
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "processor did not stop"


@dataclass
class ProcessorProcess:
    """A processor in its own process, so that it can be killed with SIGKILL."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class ProcessorHarness:
    bootstrap: str
    base_dir: Path
    partitions: int = 3
    application_id: str = field(default_factory=lambda: f"proc-{uuid.uuid4().hex[:8]}")

    def __post_init__(self) -> None:
        # Every topic under the application id, so tests never share one.
        prefix = f"{self.application_id}."
        defaults = TopicNames.defaults(self.application_id, {})
        self.topics = TopicNames(**{
            f.name: name if (name := getattr(defaults, f.name)).startswith(prefix) else prefix + name
            for f in fields(TopicNames)
        })
        prepare_topics(AdminClient({"bootstrap.servers": self.bootstrap}), self.config("setup"))
        self.producer = Producer({"bootstrap.servers": self.bootstrap, "partitioner": "murmur2_random",
                                  "enable.idempotence": True, "linger.ms": 1})
        self.outputs = TopicReader(self.bootstrap, {
            self.topics.command_results: "CommandResult",
            self.topics.execution_state_changes: "ExecutionStateChange",
            self.topics.execution_snapshots: "ExecutionSnapshot",
            self.topics.trade_tickets: "TicketInstruction",
            self.topics.dead_letters: "DeadLetter",
        })
        self._running: list[RunningProcessor | ProcessorProcess] = []
        self._adopted: list[Stoppable] = []
        self._commands = 0

    # -- processors --------------------------------------------------------------------

    def config(self, instance_id: str, *, state_dir: Path | None = None, commit_interval_ms: int = 50,
               static_membership: bool = False) -> ProcessorConfig:
        """Dynamic group membership unless asked: tests start and stop instances under many ids, and a
        static member that stops keeps its partitions for the session timeout."""
        return ProcessorConfig(
            kafka=KafkaSettings(self.bootstrap), application_id=self.application_id, instance_id=instance_id,
            state_dir=state_dir or self.base_dir / instance_id, topics=self.topics, partitions=self.partitions,
            commit_interval_ms=commit_interval_ms, batch_size=500, http_host="127.0.0.1", http_port=0,
            log_level="INFO", static_membership=static_membership, session_timeout_ms=10_000,
        )

    def start(self, instance_id: str = "p1", **overrides: Any) -> RunningProcessor:
        app = ProcessorApp(self.config(instance_id, **overrides))
        thread = threading.Thread(target=app.run, name=f"processor-{instance_id}", daemon=True)
        thread.start()
        running = RunningProcessor(app, thread)
        self._running.append(running)
        wait_until(lambda: app.ready()[0], 60, what=f"processor {instance_id} ready")
        return running

    def spawn(self, instance_id: str, *, state_dir: Path | None = None, static_membership: bool = False,
              extra_args: Sequence[str] = (), env: Mapping[str, str] | None = None) -> ProcessorProcess:
        state = state_dir or self.base_dir / instance_id
        log_path = self.base_dir / f"{instance_id}.log"
        environment = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            **{f"TOPIC_{f.name.upper()}": getattr(self.topics, f.name) for f in fields(TopicNames)},
            **(env or {}),
        }
        with open(log_path, "ab") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "processor", "--application-id", self.application_id,
                 "--instance-id", instance_id, "--state-dir", str(state), "--partitions", str(self.partitions),
                 "--commit-interval-ms", "50", "--http-port", "0",
                 "--static-membership", "true" if static_membership else "false", "--session-timeout-ms", "10000",
                 *extra_args],
                cwd=ROOT, env=environment, stdout=log_file, stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
            )
        spawned = ProcessorProcess(process, log_path)
        self._running.append(spawned)
        return spawned

    def adopt(self, running: Stoppable) -> None:
        """Something else the test started that `close` must stop (if the test did not)."""
        self._adopted.append(running)

    def stop_all(self) -> None:
        for running in reversed(self._running):
            running.stop()
        self._running.clear()

    def close(self) -> None:
        self.stop_all()
        for adopted in reversed(self._adopted):
            adopted.stop()
        self.producer.flush(10)
        del self.producer  # lets librdkafka's threads end before the broker stops
        self.outputs.close()

    # -- inputs ------------------------------------------------------------------------

    def publish_proposal(self, raw_artifact: dict[str, Any], *, wait_stored: bool | None = None) -> None:
        """Publish an approved proposal as upstream does and, by default when a processor is running,
        wait until it is stored (in its store's changelog: what a test reading state expects). A
        create sent right after publishing would be admitted anyway: its admission waits until the
        proposal's partition is read past what was written before it (processor.admission)."""
        if wait_stored is None:
            wait_stored = bool(self._running)
        record = translate.artifact_to_record(parse_artifact(raw_artifact))
        self.produce(self.topics.approved_proposals, record["proposal_id"], serde.encode("ApprovedProposal", record))
        if wait_stored:
            key = f"p/{record['proposal_id']}/{record['version_no']}".encode()
            wait_until(lambda: key in self._changelog_keys(self.topics.proposals_changelog), 60,
                       what=f"proposal {record['proposal_id']} v{record['version_no']} stored")

    def _changelog_keys(self, topic: str) -> set[bytes]:
        return {message.key() or b"" for message in committed_records(self.bootstrap, topic)}

    def produce(self, topic: str, key: str | bytes | None, value: bytes | None,
                headers: list[tuple[str, bytes]] | None = None) -> None:
        self.producer.produce(topic, key=key.encode() if isinstance(key, str) else key, value=value,
                              headers=produce_headers(headers))
        self.producer.flush(10)

    def create(self, idempotency_key: str, proposal_id: str, version_no: int, *,
               policy: dict[str, Any] | None = None, actor: dict[str, str] | None = None,
               inline_artifact: dict[str, Any] | None = None, headers: list[tuple[str, bytes]] | None = None) -> str:
        self._commands += 1
        command_id = f"cmd-{self._commands}-{uuid.uuid4().hex[:6]}"
        execution_id = execution_id_for_key(idempotency_key)
        policy_record = translate.policy_to_record(translate.policy_from_record({**DEFAULT_POLICY, **(policy or {})}))
        command = {
            "command_id": command_id, "command_type": "CREATE_EXECUTION", "execution_id": execution_id,
            "correlation_id": f"corr-{command_id}", "issued_at": T0 + timedelta(seconds=self._commands),
            "payload": {
                "idempotency_key": idempotency_key, "request_hash": "sha256:gateway-copy",
                "proposal_id": proposal_id, "version_no": version_no, "execution_policy": policy_record,
                "actor": actor or ACTOR,
                "artifact": None if inline_artifact is None
                else translate.artifact_to_record(parse_artifact(inline_artifact)),
            },
        }
        self.produce(self.topics.execution_commands, execution_id, serde.encode("ExecutionCommand", command), headers)
        return command_id

    def cancel(self, execution_id: str, reason: str = "client withdrew") -> str:
        self._commands += 1
        command_id = f"cmd-{self._commands}-{uuid.uuid4().hex[:6]}"
        command = {
            "command_id": command_id, "command_type": "CANCEL_EXECUTION", "execution_id": execution_id,
            "correlation_id": f"corr-{command_id}", "issued_at": T0 + timedelta(seconds=self._commands),
            "payload": {"reason": reason, "actor": ACTOR},
        }
        self.produce(self.topics.execution_commands, execution_id, serde.encode("ExecutionCommand", command))
        return command_id

    def send_events(self, events: Iterable[OrderEvent], headers: list[tuple[str, bytes]] | None = None) -> None:
        for event in events:
            record = translate.order_event_to_record(event)
            value = serde.encode("OrderEvent", record)
            while True:
                try:
                    self.producer.produce(self.topics.order_events, key=event.execution_id.encode(), value=value,
                                          headers=produce_headers(headers))
                    break
                except BufferError:  # the local queue is full: let deliveries drain it
                    self.producer.poll(0.1)
        self.producer.flush(60)

    # -- outputs -----------------------------------------------------------------------

    def result(self, command_id: str, timeout_s: float = 30) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            self.outputs.poll(0.1)
            return next((r for r in self.outputs.records[self.topics.command_results] if r["command_id"] == command_id), None)
        return wait_until(find, timeout_s, what=f"result of {command_id}")

    def state_changes(self, execution_id: str) -> list[dict[str, Any]]:
        self.outputs.poll(0.1)
        return [r for r in self.outputs.records[self.topics.execution_state_changes] if r["execution_id"] == execution_id]

    def view(self, execution_id: str) -> ExecutionView:
        """The execution as a consumer folds it from its state changes (`wire.views`)."""
        view = ExecutionView(execution_id)
        for change in self.state_changes(execution_id):
            view.apply_change(change)
        return view

    def snapshot(self, execution_id: str) -> dict[str, Any] | None:
        """The latest row of the execution-snapshots table for the execution."""
        self.outputs.poll(0.1)
        rows = [r for r in self.outputs.records[self.topics.execution_snapshots] if r["execution_id"] == execution_id]
        return rows[-1] if rows else None

    def latest_status(self, execution_id: str) -> str | None:
        changes = self.state_changes(execution_id)
        return changes[-1]["execution"]["status"] if changes else None

    def wait_status(self, execution_id: str, status: str, timeout_s: float = 30) -> dict[str, Any]:
        """The latest state change once the execution has `status`, its snapshot folded whole
        (every ticket, every lifecycle row so far) as a consumer of the stream sees it."""
        wait_until(lambda: self.latest_status(execution_id) == status, timeout_s,
                   what=f"{execution_id} to be {status} (is {self.latest_status(execution_id)})")
        changes = self.state_changes(execution_id)
        return {**changes[-1], "execution": self.view(execution_id).snapshot()}

    def instructions(self, execution_id: str | None = None) -> list[dict[str, Any]]:
        self.outputs.poll(0.1)
        return [r for r in self.outputs.records[self.topics.trade_tickets]
                if execution_id is None or r["execution_id"] == execution_id]

    def dead_letters(self) -> list[dict[str, Any]]:
        self.outputs.poll(0.1)
        return list(self.outputs.records[self.topics.dead_letters])


class ScriptedOms:
    """An OMS speaking the Kafka contract: SUBMIT/CANCEL instructions in, order events out."""

    def __init__(
        self,
        harness: ProcessorHarness,
        provider: MockExecutionProvider | None = None,
        *,
        execution_id: str | None = None,  # answer only this execution's instructions
    ) -> None:
        self.harness = harness
        self.provider = provider or MockExecutionProvider(clock_start=T0 + timedelta(minutes=1))
        self.execution_id = execution_id
        self._seen = 0

    def pump(self) -> int:
        """Answer every instruction not answered yet; returns how many were handled."""
        instructions = self.harness.instructions(self.execution_id)
        new = instructions[self._seen:]
        self._seen = len(instructions)
        for instruction in new:
            ticket = translate.ticket_from_record(instruction["ticket"])
            if instruction["instruction"] == "SUBMIT":
                self.provider.submit_tickets(instruction["execution_id"], [ticket])
            else:
                self.provider.cancel_ticket(ticket.ticket_id)
        self.harness.send_events(self.provider.drain_events())
        return len(new)

    def run_until(self, done: Callable[[], bool], timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.pump()
            if done():
                return
            time.sleep(0.05)
        raise AssertionError("OMS conversation did not finish in time")
