"""A large, seeded order-event stream and its reference fold, for the crash-safety and scale-out tests.

The executions are built so that the reference does not depend on timing: every ticket has
no dependency, so every ticket is released at creation and every order event applies to a
released ticket whenever it arrives. One execution is one key, hence one partition of every
executions topic: the processor folds an execution's events in the order they were produced,
which is the order the reference folds them in here, with the pure domain, mirroring
`processor.executions` (creation, release marks, order events; the same causes and times).

The reference gives, per execution: the encoded ExecutionStateChange records (sequence 1..n), the
SUBMIT instructions, the log entries, the history (fills and reports by id) and the final
`Execution` (its head). The checks compare the committed output topics (`read_committed`, byte for
byte), the execution-snapshots table (its latest row per execution) and the state stores with it.
"""

from __future__ import annotations

import copy
import json
import random
import re
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from execution_domain import (
    EventDetails,
    Execution,
    InMemoryHistory,
    LogEntry,
    OrderEvent,
    OrderEventType,
    Outcome,
    Ticket,
    apply_order_event,
    create_execution,
    execution_id_for_key,
    mark_released,
    parse_artifact,
)
from execution_domain.events import NO_DETAILS
from execution_domain.proposal import seal_artifact
from execution_domain.tickets import generate_tickets
from kafka_client.records import coordinates
from processor.create_request import CreateRequest
from processor.runtime.restore import restore_consumer_config, restore_store
from processor.runtime.store import PartitionStore
from processor.state_codecs import LogEntryCodec
from testkit.processor import ACTOR, DEFAULT_POLICY, T0, ProcessorHarness, drain_until_quiet, load_sample, wait_until
from wire import records as translate
from wire import serde
from wire.views import ExecutionView


def wire_roundtrip(schema: str, record: dict[str, Any]) -> dict[str, Any]:
    return serde.decode(schema, serde.encode(schema, record), topic="reference", partition=0, offset=0)


# -- executions ------------------------------------------------------------------------------------


@dataclass
class PlannedExecution:
    key: str  # idempotency key
    execution_id: str
    raw: dict[str, Any]  # the sealed artifact
    tickets: tuple[Ticket, ...]
    command_id: str | None = None
    issued_at: datetime | None = None


def build_executions(rng: random.Random, count: int, prefix: str) -> list[PlannedExecution]:
    """`count` sealed EXECUTION_READY artifacts of 2-4 base-currency SECURITY_TRADE intents, none
    with dependencies (so every ticket is released at creation)."""
    base = load_sample("rfc_partial_then_fill")
    currency = base["base_currency"]
    planned = []
    for i in range(count):
        intents = []
        for j in range(rng.randint(2, 4)):
            side = rng.choice(("SELL", "BUY"))
            intents.append({
                "intent_type": "SECURITY_TRADE", "intent_id": f"oi_{side.lower()}_{j}", "dependencies": [],
                "instrument_id": f"SG_EQ_{i:03d}_{j}", "side": side,
                "quantity": str(rng.randrange(500, 20_000, 10)), "currency": currency,
                "indicative_price": f"{rng.randint(100, 9_000) / 100:.2f}",
            })
        raw = copy.deepcopy(base)
        raw.update({"proposal_id": f"{prefix}_{i}", "version_no": 1, "portfolio_id": f"pf_{prefix}_{i}"})
        raw["trades_and_funding"] = {"funding_claimed": False, "intents": intents}
        sealed = seal_artifact(raw)
        policy = translate.policy_from_record(DEFAULT_POLICY)
        tickets = generate_tickets(parse_artifact(sealed), policy)
        key = f"key-{prefix}-{i}-{uuid.uuid4().hex[:6]}"
        planned.append(PlannedExecution(key, execution_id_for_key(key), sealed, tuple(tickets)))
    return planned


def create_all(harness: ProcessorHarness, planned: list[PlannedExecution], timeout_s: float = 90) -> None:
    """Phase 1: publish every proposal, wait until the processors stored them, create every
    execution (one idempotency key each) and wait for every CREATED result."""
    for plan in planned:
        harness.publish_proposal(plan.raw)
    wait_until(lambda: committed_key_count(harness.bootstrap, harness.topics.proposals_changelog, b"p/")
               >= len(planned), timeout_s, 0.5, what="every proposal stored by the processors")
    created = []
    for plan in planned:
        plan.command_id = harness.create(plan.key, plan.raw["proposal_id"], plan.raw["version_no"])
        # What ProcessorHarness.create stamps on the command it just produced.
        plan.issued_at = T0 + timedelta(seconds=harness._commands)
        created.append((plan, plan.command_id))
    for plan, command_id in created:
        result = harness.result(command_id, timeout_s)
        assert result["outcome"] == "CREATED", result
        assert result["execution_id"] == plan.execution_id
        assert result["execution"]["created_at"] == plan.issued_at


# -- the order-event stream ------------------------------------------------------------------------


def _split(rng: random.Random, total: int, parts: int) -> list[int]:
    """`total` as `parts` positive integers, in random proportions."""
    cuts = sorted(rng.sample(range(1, total), parts - 1))
    return [b - a for a, b in zip([0, *cuts], [*cuts, total], strict=True)]


def _ticket_events(rng: random.Random, plan: PlannedExecution, ticket: Ticket, clock: list[datetime]) -> list[OrderEvent]:
    """One ticket's OMS reports: accepted, many fills (per fill or cumulative) to full, or partial
    fills then the remainder cancelled; stale status reports; then adjacent reorderings and exact
    duplicates re-sent."""
    quantity = int(ticket.order_quantity)
    mode = rng.choices(("per_fill", "cumulative", "cancel_rest"), (70, 15, 15))[0]
    fills = _split(rng, quantity // 10, rng.randint(18, 34))  # in lots of 10
    if mode == "cancel_rest":
        fills = fills[: len(fills) * 2 // 3]
    order_id = f"oms-{ticket.ticket_id}"
    events: list[OrderEvent] = []

    def add(event_type: OrderEventType, details: EventDetails = NO_DETAILS) -> None:
        clock[0] += timedelta(milliseconds=rng.randint(1, 400))
        events.append(OrderEvent(
            event_id=f"{ticket.ticket_id}:{len(events):03d}", execution_id=plan.execution_id,
            ticket_id=ticket.ticket_id, source="oms-sim", event_type=event_type, external_order_id=order_id,
            occurred_at=clock[0], details=details,
        ))

    add(OrderEventType.ORDER_ACCEPTED)
    filled, notional = Decimal(0), Decimal(0)
    for index, lots in enumerate(fills):
        last = index == len(fills) - 1
        qty, price = Decimal(lots * 10), Decimal(rng.randint(1_000, 2_000)) / 100
        filled, notional = filled + qty, notional + qty * price
        kind = OrderEventType.FILLED if last and mode != "cancel_rest" else OrderEventType.PARTIAL_FILL
        if mode == "cumulative":
            add(kind, EventDetails(filled_qty=filled, avg_price=(notional / filled).quantize(Decimal("0.000001"))))
        else:
            add(kind, EventDetails(fill_id=f"F-{ticket.ticket_id[-6:]}-{index}", last_qty=qty, last_price=price))
        roll = rng.random()
        if roll < 0.04:
            add(OrderEventType.ORDER_ACCEPTED)  # a repeated acknowledgement (status report)
        elif roll < 0.07:
            add(OrderEventType.PENDING_CANCEL, EventDetails(reason="desk status report"))  # stale: kept, no state change
    if mode == "cancel_rest":
        add(OrderEventType.CANCELLED, EventDetails(reason="remainder cancelled at end of day"))

    for _ in range(max(1, len(events) // 15)):  # adjacent reorderings (the first is often the accept)
        i = 0 if rng.random() < 0.3 else rng.randrange(len(events) - 1)
        events[i], events[i + 1] = events[i + 1], events[i]
    for _ in range(len(events) // 8):  # exact duplicates, re-sent a little later
        i = rng.randrange(len(events))
        events.insert(min(len(events), i + 1 + rng.randint(0, 6)), events[i])
    return events


def _merge(rng: random.Random, streams: list[list[Any]]) -> list[Any]:
    """Random interleaving that keeps each stream's own order."""
    streams = [list(reversed(s)) for s in streams if s]
    out = []
    while streams:
        pick = rng.choices(range(len(streams)), [len(s) for s in streams])[0]
        out.append(streams[pick].pop())
        if not streams[pick]:
            streams.pop(pick)
    return out


def build_event_stream(rng: random.Random, planned: list[PlannedExecution]) -> list[OrderEvent]:
    """Every execution's reports interleaved into one stream; each event as the processor will
    decode it (through the wire schema), so the reference folds exactly the same values."""
    clock = [T0 + timedelta(hours=1)]
    per_execution = [
        _merge(rng, [_ticket_events(rng, plan, ticket, clock) for ticket in plan.tickets]) for plan in planned
    ]
    return [
        translate.order_event_from_record(wire_roundtrip("OrderEvent", translate.order_event_to_record(event)))
        for event in _merge(rng, per_execution)
    ]


# -- the reference fold ----------------------------------------------------------------------------


@dataclass
class Expected:
    execution: Execution
    state_changes: list[bytes] = field(default_factory=list)  # encoded ExecutionStateChange, sequence 1..n
    submits: list[str] = field(default_factory=list)  # ticket ids, SUBMIT instructions in order
    cancels: list[str] = field(default_factory=list)
    entries: list[LogEntry] = field(default_factory=list)  # the log, entry seq 1..n
    history: InMemoryHistory = field(default_factory=InMemoryHistory)


@dataclass(frozen=True)
class _Cause:
    kind: translate.CauseKind
    id: str
    correlation_id: str | None
    at: datetime


def _publish(outcome: Outcome, cause: _Cause, expected: Expected) -> Execution:
    """What `processor.executions.ExecutionsProcessor._publish` emits for an outcome."""
    expected.history.remember(outcome.remembered)
    execution = outcome.execution
    if outcome.entry is None:
        return execution
    seq = outcome.entry.seq
    expected.entries.append(outcome.entry)
    expected.state_changes.append(serde.encode("ExecutionStateChange", translate.state_change_record(
        change_id=f"{execution.execution_id}/{seq}", sequence=seq, occurred_at=cause.at,
        correlation_id=cause.correlation_id, cause_kind=cause.kind, cause_id=cause.id, outcome=outcome,
    )))
    expected.cancels.extend(outcome.cancel_requests)
    expected.submits.extend(ticket.ticket_id for ticket in outcome.tickets_to_submit)
    for ticket in outcome.tickets_to_submit:
        execution = _publish(mark_released(execution, ticket.ticket_id, cause.at), cause, expected)
    return execution


def _created(plan: PlannedExecution) -> Expected:
    """The creation exactly as the processor does it: the create command and the artifact
    through the wire and the pending-admission state, then `create_execution` and release marks."""
    assert plan.command_id is not None and plan.issued_at is not None
    policy_record = translate.policy_to_record(translate.policy_from_record(DEFAULT_POLICY))
    command = wire_roundtrip("ExecutionCommand", {
        "command_id": plan.command_id, "command_type": "CREATE_EXECUTION", "execution_id": plan.execution_id,
        "correlation_id": f"corr-{plan.command_id}", "issued_at": plan.issued_at,
        "payload": {
            "idempotency_key": plan.key, "request_hash": "sha256:gateway-copy",
            "proposal_id": plan.raw["proposal_id"], "version_no": plan.raw["version_no"],
            "execution_policy": policy_record, "actor": ACTOR, "artifact": None,
        },
    })
    request = CreateRequest.from_primitive(orjson.loads(orjson.dumps(CreateRequest.from_command(command).to_primitive())))
    stored = translate.artifact_from_record(
        wire_roundtrip("ApprovedProposal", translate.artifact_to_record(parse_artifact(plan.raw))))
    artifact = translate.artifact_from_record(wire_roundtrip(
        "ApprovedProposal", translate.artifact_to_record(parse_artifact(orjson.loads(orjson.dumps(stored.to_primitive()))))))
    cause = _Cause("COMMAND", plan.command_id, command["correlation_id"],
                   datetime.fromisoformat(command["issued_at"].isoformat()))
    created = create_execution(plan.execution_id, artifact, request.policy, cause.at,
                               request.origin(cause.correlation_id), artifact_inline=request.artifact_inline)
    expected = Expected(created.execution)
    expected.execution = _publish(created, cause, expected)
    return expected


@dataclass
class Reference:
    by_execution: dict[str, Expected]
    changes_after_event: list[int]  # state changes in total once the first i+1 events are folded
    created_changes: int  # state changes of the creations alone

    @property
    def total_changes(self) -> int:
        return sum(len(e.state_changes) for e in self.by_execution.values())

    def changes_after(self, events_sent: int) -> int:
        return self.created_changes if events_sent == 0 else self.changes_after_event[events_sent - 1]


def reference_fold(planned: list[PlannedExecution], events: list[OrderEvent]) -> Reference:
    by_execution = {plan.execution_id: _created(plan) for plan in planned}
    total = created = sum(len(e.state_changes) for e in by_execution.values())
    after: list[int] = []
    for event in events:
        expected = by_execution[event.execution_id]
        before = len(expected.state_changes)
        execution = expected.execution
        cause = _Cause("ORDER_EVENT", event.event_id, execution.definition.origin.correlation_id, event.occurred_at)
        expected.execution = _publish(apply_order_event(execution, event, expected.history), cause, expected)
        total += len(expected.state_changes) - before
        after.append(total)
    for expected in by_execution.values():
        assert len(expected.state_changes) == len(expected.entries) == expected.execution.seq
    return Reference(by_execution, after, created)


# -- reading what was committed ----------------------------------------------------------------------


class CommittedReader:
    """Every committed (`read_committed`) record of some topics, raw, from their beginning."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self._consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": f"raw-reader-{uuid.uuid4().hex}",
            "isolation.level": "read_committed", "enable.auto.commit": False,
        })
        metadata = self._consumer.list_topics(timeout=10)
        self._consumer.assign([TopicPartition(t, p, 0) for t in topics for p in metadata.topics[t].partitions])
        self.records: dict[str, list[tuple[int, int, bytes | None, bytes | None]]] = defaultdict(list)

    def poll(self, timeout_s: float = 0.2) -> int:
        got = 0
        while True:
            messages = self._consumer.consume(2000, timeout=timeout_s if got == 0 else 0.05)
            for m in messages:
                if m.error() is None:
                    topic, partition, offset = coordinates(m)
                    self.records[topic].append((partition, offset, m.key(), m.value()))
                    got += 1
            if not messages:
                return got

    def count(self, topic: str) -> int:
        self.poll(0.05)
        return len(self.records[topic])

    def by_key(self, topic: str) -> dict[str, list[bytes | None]]:
        grouped: dict[str, list[bytes | None]] = defaultdict(list)
        for _, _, key, value in sorted(self.records[topic], key=lambda r: (r[0], r[1])):
            grouped[(key or b"").decode()].append(value)
        return grouped

    def drain(self, quiet_s: float = 1.5) -> None:
        drain_until_quiet(self.poll, quiet_s)

    def close(self) -> None:
        self._consumer.close()


def committed_key_count(bootstrap: str, topic: str, prefix: bytes) -> int:
    """Distinct keys starting with `prefix` in the committed records of `topic`."""
    reader = CommittedReader(bootstrap, [topic])
    try:
        reader.drain(0.3)
        return len({key for _, _, key, _ in reader.records[topic] if key and key.startswith(prefix)})
    finally:
        reader.close()


def records_written(bootstrap: str, topic: str) -> int:
    """Every record of `topic`, committed or not (`read_uncommitted`): more than the committed
    count means some transactions were aborted (their work was redone after a crash)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"uncommitted-{uuid.uuid4().hex}",
                         "isolation.level": "read_uncommitted", "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
                for p in partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        count, deadline = 0, time.monotonic() + 60
        while time.monotonic() < deadline and any(
                consumer.position([TopicPartition(topic, p)])[0].offset < end for p, end in ends.items() if end > 0):
            count += sum(1 for m in consumer.consume(2000, timeout=0.5) if m.error() is None)
        return count
    finally:
        consumer.close()


class InputProgress:
    """How many order events the processors' group has folded and committed: the sum of its
    committed offsets on the order-events topic (committed in the same transactions as the outputs,
    and visible at once, unlike the outputs, whose reading lags)."""

    def __init__(self, harness: ProcessorHarness) -> None:
        self._admin = AdminClient({"bootstrap.servers": harness.bootstrap})
        self._group = harness.application_id
        self._partitions = [TopicPartition(harness.topics.order_events, p) for p in range(harness.partitions)]

    def folded(self) -> int:
        request = [ConsumerGroupTopicPartitions(self._group, self._partitions)]
        result = self._admin.list_consumer_group_offsets(request, request_timeout=10)[self._group].result()
        return sum(max(tp.offset, 0) for tp in result.topic_partitions)

    def wait_for(self, at_least: int, timeout_s: float, what: str) -> int:
        return wait_until(lambda: (n := self.folded()) >= at_least and n, timeout_s, 0.02,
                          what=f"{what} ({at_least} order events folded and committed)")


class EventStream:
    """Produces the events in the background at a steady rate, in their order (one producer, so
    each execution's events stay in order in its partition)."""

    def __init__(self, harness: ProcessorHarness, events: list[OrderEvent], per_second: float, batch: int = 25) -> None:
        self._harness = harness
        self._events = events
        self._per_second = per_second
        self._batch = batch
        self.sent = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="event-stream", daemon=True)

    def start(self) -> EventStream:
        self._thread.start()
        return self

    def _run(self) -> None:
        started = time.monotonic()
        try:
            while self.sent < len(self._events):
                piece = self._events[self.sent:self.sent + self._batch]
                self._harness.send_events(piece)
                self.sent += len(piece)
                ahead = started + self.sent / self._per_second - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        except BaseException as error:  # reported by join()
            self.error = error

    def wait_sent(self, count: int, timeout_s: float = 120) -> None:
        wait_until(lambda: self.sent >= count or self.error is not None or not self._thread.is_alive(),
                   timeout_s, 0.02, what=f"{count} events produced")
        if self.error is not None:
            raise self.error

    def join(self, timeout_s: float = 120) -> None:
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "event stream did not finish"
        if self.error is not None:
            raise self.error
        assert self.sent == len(self._events)


def _decode(schema: str, value: bytes | None, topic: str) -> dict[str, Any]:
    """A record value read back (a tombstone fails as an empty value would: DecodeError)."""
    return serde.decode(schema, value or b"", topic=topic, partition=0, offset=0)


def _decode_change(value: bytes | None) -> dict[str, Any]:
    return _decode("ExecutionStateChange", value, "state-changes")


def wait_until_folded(reader: CommittedReader, harness: ProcessorHarness, reference: Reference, timeout_s: float) -> None:
    """Until every execution has at least as many committed state changes as the reference has."""
    topic = harness.topics.execution_state_changes
    expected = {eid: len(e.state_changes) for eid, e in reference.by_execution.items()}

    def behind() -> dict[str, tuple[int, int]]:
        reader.poll(0.1)
        have = Counter((key or b"").decode() for _, _, key, _ in reader.records[topic])
        return {eid: (have[eid], n) for eid, n in expected.items() if have[eid] < n}

    deadline = time.monotonic() + timeout_s
    while (lagging := behind()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not lagging, f"state changes missing (execution: (committed, expected)) after {timeout_s}s: {lagging}"
    reader.drain(1.5)  # anything extra (a duplicate) would be here by now


def check_outputs(reader: CommittedReader, harness: ProcessorHarness, reference: Reference,
                  ignore: set[str] | frozenset[str] = frozenset()) -> dict[str, int]:
    """The committed output topics equal the reference: state changes byte for byte with sequences
    1..n once each; one SUBMIT per ticket and no CANCEL; no dead letter. Executions in `ignore`
    (made outside the reference, e.g. through the gateway) are left out."""
    topics = harness.topics
    changes = {k: v for k, v in reader.by_key(topics.execution_state_changes).items() if k not in ignore}
    assert set(changes) == set(reference.by_execution), "state changes for unexpected executions"
    problems = []
    for eid, expected in reference.by_execution.items():
        got = changes[eid]
        sequences = [_decode_change(v)["sequence"] for v in got]
        if sequences != list(range(1, len(expected.state_changes) + 1)):
            dupes = sorted(s for s, n in Counter(sequences).items() if n > 1)
            gaps = sorted(set(range(1, len(expected.state_changes) + 1)) - set(sequences))
            problems.append(f"{eid}: {len(sequences)} state changes for {len(expected.state_changes)} expected; "
                            f"duplicated sequences {dupes[:20]}, missing {gaps[:20]}"
                            + ("" if dupes or gaps else f", out of order: {sequences}"))
            continue
        for seq, (value, want) in enumerate(zip(got, expected.state_changes, strict=True), 1):
            if value != want:
                actual, wanted = _decode_change(value), _decode_change(want)
                diff = [k for k in wanted if actual.get(k) != wanted[k]]
                detail: dict[str, Any] = {k: (actual.get(k), wanted[k]) for k in diff if k != "execution"}
                if "execution" in diff:
                    detail["execution"] = [k for k in wanted["execution"]
                                           if actual["execution"].get(k) != wanted["execution"][k]]
                problems.append(f"{eid} sequence {seq} differs from the reference in {diff}: {detail}")
                break
        view = ExecutionView(eid)
        for value in got:
            view.apply_change(_decode_change(value))
        summary = _decode_snapshot(serde.encode("ExecutionSnapshot", translate.snapshot_record(expected.execution)))
        folded = {**view.header, "tickets": list(view.tickets.values()), "events": [], "content": "SUMMARY"}
        if folded != summary:
            problems.append(f"{eid}: the changes folded (wire.views) differ from the reference execution's summary")
        if view.missing_events:
            problems.append(f"{eid}: lifecycle rows missing from the stream: {view.missing_events[:10]}")
    assert not problems, "state-change topic differs from the reference fold:\n" + "\n".join(problems[:30])

    table = {k: v for k, v in reader.by_key(topics.execution_snapshots).items() if k not in ignore}
    assert set(table) == set(reference.by_execution), "snapshot rows for unexpected executions"
    for eid, expected in reference.by_execution.items():
        want = serde.encode("ExecutionSnapshot", translate.snapshot_record(expected.execution))
        if table[eid][-1] != want:
            problems.append(f"{eid}: the latest execution-snapshots row differs from the reference summary")
    assert not problems, "execution-snapshots table differs from the reference fold:\n" + "\n".join(problems[:30])

    instructions = [i for i in (_decode("TicketInstruction", v, "t")
                                for _, _, _, v in reader.records[topics.trade_tickets])
                    if i["execution_id"] not in ignore]
    submits = Counter(i["ticket"]["ticket_id"] for i in instructions if i["instruction"] == "SUBMIT")
    expected_submits = Counter(t for e in reference.by_execution.values() for t in e.submits)
    assert all(n == 1 for n in expected_submits.values())
    twice = {t: n for t, n in submits.items() if n > 1}
    assert not twice, f"tickets released more than once: {twice}"
    assert submits == expected_submits, (
        f"SUBMIT instructions differ: missing {sorted(set(expected_submits) - set(submits))[:10]}, "
        f"unexpected {sorted(set(submits) - set(expected_submits))[:10]}")
    cancels = [i for i in instructions if i["instruction"] != "SUBMIT"]
    assert not cancels, f"unexpected instructions: {cancels[:3]}"

    dead = [_decode("DeadLetter", v, "d")
            for _, _, _, v in reader.records[topics.dead_letters]]
    assert not dead, f"dead letters: {[(d['error_type'], d['reason']) for d in dead[:5]]}"
    return {"state_changes": sum(len(v) for v in changes.values()), "submits": sum(submits.values())}


def _decode_snapshot(value: bytes | None) -> dict[str, Any]:
    return _decode("ExecutionSnapshot", value, "execution-snapshots")


def _stored_executions(store: PartitionStore) -> dict[str, dict[str, Any]]:
    """Per execution: its head (x/), definition (d/), log entries (l/, by seq) and history facts
    (f/, e/), as JSON, from a store (layout: processor.state_codecs)."""
    stored: dict[str, dict[str, Any]] = defaultdict(lambda: {"entries": {}, "fills": {}, "reports": {}})
    for key, value in store.items(b"x/"):
        stored[key[2:].decode()]["head"] = orjson.loads(value)
    for key, value in store.items(b"d/"):
        stored[key[2:].decode()]["definition"] = orjson.loads(value)
    for key, value in store.items(b"l/"):
        eid, _, seq = key[2:].decode().rpartition("/")
        stored[eid]["entries"][int(seq)] = orjson.loads(value)
    for prefix, kind in ((b"f/", "fills"), (b"e/", "reports")):
        for key, value in store.items(prefix):
            eid, _, rest = key[2:].decode().partition("/")
            stored[eid][kind][rest] = orjson.loads(value)
    return dict(stored)


def _expected_stored(expected: Expected) -> dict[str, Any]:
    execution = expected.execution
    entries = LogEntryCodec(lambda _: execution.definition)
    history = expected.history
    stored: dict[str, Any] = orjson.loads(orjson.dumps({
        "head": execution.to_primitive(),
        "definition": execution.definition.to_primitive(),
        "entries": {str(entry.seq): orjson.loads(entries.encode(entry)) for entry in expected.entries},
        "fills": {f"{ticket_id}/{fill_id}": fill.to_primitive() for (ticket_id, fill_id), fill in history.fills.items()},
        "reports": {f"{ticket_id}/{event_id}": [key.to_primitive() for key in keys]
                    for (ticket_id, event_id), keys in history.seen.items()},
    }))
    return stored


def _compare_stored(label: str, stored: dict[str, dict[str, Any]], reference: Reference) -> list[str]:
    problems = []
    missing = sorted(set(reference.by_execution) - set(stored))
    extra = sorted(set(stored) - set(reference.by_execution))
    if missing or extra:
        problems.append(f"{label}: executions missing {missing[:10]}, unexpected {extra[:10]}")
    for eid, expected in reference.by_execution.items():
        if eid in stored:
            want = _expected_stored(expected)
            got = {**stored[eid], "entries": {str(k): v for k, v in stored[eid]["entries"].items()}}
            if got != want:
                keys = [k for k in want if got.get(k) != want[k]]
                problems.append(f"{label}: {eid} differs in {keys} (stored log {len(got['entries'])} entries, "
                                f"reference {len(want['entries'])})")
    return problems


def check_local_stores(state_dirs: list[Path], harness: ProcessorHarness, reference: Reference) -> dict[int, str]:
    """After every processor stopped: for each partition, the freshest local store (highest
    changelog checkpoint among all the instances' state directories) holds exactly the reference
    state of the executions of that partition, and no pending admission. Returns which state
    directory served each partition."""
    changelog = harness.topics.executions_changelog
    stored: dict[str, dict[str, Any]] = {}
    served: dict[int, str] = {}
    problems = []
    for partition in range(harness.partitions):
        best: tuple[int, Path] | None = None
        for state_dir in state_dirs:
            path = state_dir / "executions" / str(partition)
            if not path.exists():
                continue
            store = PartitionStore(path, changelog, partition)
            try:
                offset = store.changelog_next_offset
            finally:
                store.close()
            if best is None or offset > best[0]:
                best = (offset, path)
        if best is None:
            problems.append(f"no local store of partition {partition}")
            continue
        store = PartitionStore(best[1], changelog, partition)
        try:
            stored.update(_stored_executions(store))
            pending = [key for key, _ in store.items(b"a/")]
            if pending:
                problems.append(f"partition {partition}: pending admissions left {pending[:5]}")
        finally:
            store.close()
        served[partition] = f"{best[1].parent.parent.name}@{best[0]}"
    problems += _compare_stored("local stores", stored, reference)
    assert not problems, "state stores differ from the reference fold:\n" + "\n".join(problems[:30])
    return served


def check_changelog_restore(tmp_dir: Path, harness: ProcessorHarness, reference: Reference) -> int:
    """A fresh store restored from the executions changelog (the stores' source of truth) holds
    exactly the reference state. Returns how many changelog records were restored."""
    consumer = Consumer(restore_consumer_config({"bootstrap.servers": harness.bootstrap}))
    stored: dict[str, dict[str, Any]] = {}
    restored = 0
    try:
        for partition in range(harness.partitions):
            store = PartitionStore(tmp_dir / f"restored-{partition}", harness.topics.executions_changelog, partition)
            try:
                restored += restore_store(store, consumer, timeout_s=120).records_restored
                stored.update(_stored_executions(store))
            finally:
                store.close()
    finally:
        consumer.close()
    problems = _compare_stored("store restored from the changelog", stored, reference)
    assert not problems, "changelog differs from the reference fold:\n" + "\n".join(problems[:30])
    return restored


def restores_logged(log_path: Path) -> list[str]:
    """The processor's 'restored store ...' log lines (JSON lines; other lines are skipped)."""
    lines = []
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            message = json.loads(line).get("msg", "")
        except ValueError:
            continue
        if message.startswith("restored store executions/"):
            lines.append(message)
    return lines


def log_problems(log_path: Path) -> list[str]:
    """WARNING/ERROR lines of a processor log, for the test's report."""
    found = []
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            if line.strip():
                found.append(line[:300])
            continue
        if entry.get("level") in ("WARNING", "ERROR", "CRITICAL") and "anomaly" not in entry.get("msg", ""):
            found.append(f"{entry.get('level')} {entry.get('msg', '')[:300]}")
    return found


def chunks(items: list[Any], count: int) -> list[list[Any]]:
    """`items` cut into `count` consecutive pieces of (nearly) equal size."""
    size, extra = divmod(len(items), count)
    out, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        out.append(items[start:end])
        start = end
    return out


_RESTORED = re.compile(r"restored store executions/(\d+): (\d+) changelog records from offset (\d+) to (\d+)")


def parse_restores(lines: list[str]) -> list[tuple[int, int, int, int]]:
    """(partition, records, from_offset, end_offset) of each 'restored store' line."""
    restores = []
    for line in lines:
        if m := _RESTORED.search(line):
            partition, records, from_offset, end_offset = map(int, m.groups())
            restores.append((partition, records, from_offset, end_offset))
    return restores
