"""The quixstreams peer's fold: what `ExecutionsProcessor.on_order_event` does, over a state of bytes.

Bench only, and free of quixstreams (`bench.quix_peer` wires it into an Application; tests drive
it with a dict). The state is one execution's: quixstreams scopes a stateful function's state to
the message key, and order events are keyed by execution_id. It holds the processor's pieces
under keys of its own, each value encoded with the processor's codecs (`processor.state_codecs`)
and passed to quixstreams as bytes:

    d                           the definition (immutable, written once)
    x                           the head: each ticket's current state and the counters
    l/<seq, 10 digits>          one log entry, written once
    f/<ticket_id>/<fill_id>     a fill applied (per-fill dedup)
    e/<ticket_id>/<event_id>    the reports processed under an event id (event dedup)
    u/<execution>\x1f<ticket>\x1f<event>   reports that reached no ticket
    c/<command_id>              a cancel command handled (never written here: order events only)

Per order event: decode it (the topic's codec, as the processor's), read the head (decoded from
the state's bytes every time: quixstreams keeps bytes, not objects) and the definition
(immutable, so decoded once per process like the processor's definitions cache), look the fill
and the reports up by id, apply the domain's `apply_order_event`, write what it remembered, the
log entry and the head, and return the records the processor would produce for it
(`processor.outputs.Outputs`: the DELTA ExecutionStateChange of each log entry, SUBMIT/CANCEL
instructions, a version release). An execution the state does not have yet starts from its
definition and created head as the processor stored them (the seed: the peer has no create path).

Not done, unlike the processor: the execution-snapshots table (a SUMMARY row per execution per
transaction needs a commit hook quixstreams does not offer) and the processor's metrics and logs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from execution_domain import (
    Execution,
    ExecutionState,
    Outcome,
    apply_order_event,
    mark_released,
)
from execution_domain.definition import ExecutionDefinition
from execution_domain.events import ReportKey
from execution_domain.fills import Fill
from execution_domain.history import Remembered, UnroutedKey
from processor.executions import Cause, UnknownExecution
from processor.kafka_provider import KafkaExecutionProvider
from processor.outputs import Codecs, Outputs
from processor.runtime.journal import OutputRecord, RecordJournal
from processor.state_codecs import DefinitionCodec, FillCodec, HeadCodec, LogEntryCodec, ReportsCodec
from wire import records as translate
from wire.topics import TopicNames

# As processor.executions: an execution that ends here frees its proposal version.
_ENDED_FREEING_VERSION = frozenset({ExecutionState.REJECTED, ExecutionState.CANCELLED})
_MAX_DEFINITIONS = 20_000  # the processor's definitions cache bound


class BytesState(Protocol):
    """What the fold needs of quixstreams' `State` (bytes in, bytes out)."""

    def get_bytes(self, key: bytes) -> bytes | None: ...

    def set_bytes(self, key: bytes, value: bytes) -> None: ...


class DictState:
    """One execution's state in a dict (tests, and the seed check)."""

    def __init__(self) -> None:
        self.values: dict[bytes, bytes] = {}

    def get_bytes(self, key: bytes) -> bytes | None:
        return self.values.get(key)

    def set_bytes(self, key: bytes, value: bytes) -> None:
        self.values[key] = value


def entry_key(seq: int) -> bytes:
    return b"l/%010d" % seq


def unrouted_key(key: UnroutedKey) -> bytes:
    return b"u/" + "\x1f".join(key).encode()


class StateHistory:
    """`ExecutionHistory` over one execution's state: each fact under its own key."""

    def __init__(self, state: BytesState, fills: FillCodec, reports: ReportsCodec) -> None:
        self._state = state
        self._fills = fills
        self._reports = reports

    def fill(self, ticket_id: str, fill_id: str) -> Fill | None:
        raw = self._state.get_bytes(f"f/{ticket_id}/{fill_id}".encode())
        return None if raw is None else self._fills.decode(raw)

    def reports(self, ticket_id: str, event_id: str) -> tuple[ReportKey, ...]:
        raw = self._state.get_bytes(f"e/{ticket_id}/{event_id}".encode())
        return () if raw is None else self._reports.decode(raw)

    def unrouted(self, key: UnroutedKey) -> tuple[ReportKey, ...]:
        raw = self._state.get_bytes(unrouted_key(key))
        return () if raw is None else self._reports.decode(raw)

    def command_handled(self, command_id: str) -> bool:
        return self._state.get_bytes(f"c/{command_id}".encode()) is not None

    def remember(self, remembered: Remembered) -> None:
        state = self._state
        for ticket_id, fill in remembered.fills:
            state.set_bytes(f"f/{ticket_id}/{fill.fill_id}".encode(), self._fills.encode(fill))
        for ticket_id, event_id, reports in remembered.reports:
            state.set_bytes(f"e/{ticket_id}/{event_id}".encode(), self._reports.encode(reports))
        for key, reports in remembered.unrouted:
            state.set_bytes(unrouted_key(key), self._reports.encode(reports))
        for command_id in remembered.commands:
            state.set_bytes(f"c/{command_id}".encode(), b"1")


def read_seed(lines: Iterable[bytes]) -> dict[str, tuple[bytes, bytes]]:
    """execution_id -> (definition, head) from `execution_id TAB definition TAB head` lines (the
    processor's stored bytes: orjson never writes a raw tab or newline)."""
    seed: dict[str, tuple[bytes, bytes]] = {}
    for line in lines:
        line = line.rstrip(b"\n")
        if not line:
            continue
        eid, definition, head = line.split(b"\t")
        seed[eid.decode()] = (definition, head)
    return seed


def seed_line(execution_id: str, definition: bytes, head: bytes) -> bytes:
    return b"\t".join((execution_id.encode(), definition, head)) + b"\n"


class PeerFold:
    """The fold of one peer process. Not thread-safe; one quixstreams app drives it."""

    def __init__(self, topics: TopicNames, seed: Mapping[str, tuple[bytes, bytes]], codecs: Codecs) -> None:
        """`codecs`: every topic kind's codec, as the processor's tasks get them
        (`wire.formats.WireFormats.topic_codecs`)."""
        self._seed = seed
        self._definition_codec = DefinitionCodec()
        self._definitions: dict[str, ExecutionDefinition] = {}
        self._heads = HeadCodec(self._definition_of)
        self._entries = LogEntryCodec(self._definition_of)
        self._fills = FillCodec()
        self._reports = ReportsCodec()
        self._journal = RecordJournal()
        self._outputs = Outputs(topics, self._journal, codecs)
        self._provider = KafkaExecutionProvider(self._outputs)
        self._order_event = codecs["order-events"]
        self._state: BytesState | None = None  # the state of the event being folded

    def on_order_event(self, value: bytes, state: BytesState, *, topic: str = "order-events", partition: int = 0,
                       offset: int = 0) -> list[OutputRecord]:
        """The records the processor produces for this order event, in its order; the state updated."""
        self._state = state
        self._journal.begin()
        try:
            record = self._order_event.decode(value, topic=topic, partition=partition, offset=offset)
            event = translate.order_event_from_record(record)
            execution = self._load(state, event.execution_id)
            cause = Cause("ORDER_EVENT", event.event_id, execution.definition.origin.correlation_id, event.occurred_at)
            history = StateHistory(state, self._fills, self._reports)
            seq = execution.seq
            execution = self._publish(apply_order_event(execution, event, history), cause, history)
            if execution.seq != seq:
                state.set_bytes(b"x", self._heads.encode(execution))
            return list(self._journal.outputs)
        finally:
            self._journal.discard()
            self._state = None

    # -- internals ---------------------------------------------------------------------

    def _definition_of(self, execution_id: str) -> ExecutionDefinition | None:
        definition = self._definitions.get(execution_id)
        if definition is None and self._state is not None:
            raw = self._state.get_bytes(b"d")
            if raw is not None:
                definition = self._definition_codec.decode(raw)
                if definition.execution_id != execution_id:
                    raise LookupError(f"the state of {definition.execution_id} was asked for {execution_id}")
                if len(self._definitions) >= _MAX_DEFINITIONS:
                    self._definitions.clear()
                self._definitions[execution_id] = definition
        return definition

    def _load(self, state: BytesState, execution_id: str) -> Execution:
        head = state.get_bytes(b"x")
        if head is None:
            seeded = self._seed.get(execution_id)
            if seeded is None:
                raise UnknownExecution(f"order event names unknown execution {execution_id}")
            definition, head = seeded
            state.set_bytes(b"d", definition)
            state.set_bytes(b"x", head)
        return self._heads.decode(head)

    def _publish(self, outcome: Outcome, cause: Cause, history: StateHistory) -> Execution:
        """`ExecutionsProcessor._publish` without its metrics and logs; the head is written by the caller."""
        history.remember(outcome.remembered)
        execution = outcome.execution
        entry = outcome.entry
        if entry is None:
            return execution
        assert self._state is not None
        self._state.set_bytes(entry_key(entry.seq), self._entries.encode(entry))
        self._outputs.state_change(translate.state_change_record(
            change_id=f"{execution.execution_id}/{entry.seq}", sequence=entry.seq, occurred_at=cause.at,
            correlation_id=cause.correlation_id, cause_kind=cause.kind, cause_id=cause.id, outcome=outcome,
        ))
        if outcome.cancel_requests or outcome.tickets_to_submit:
            with self._provider.bound(execution, correlation_id=cause.correlation_id, issued_at=cause.at,
                                      cause_id=cause.id) as provider:
                for ticket_id in outcome.cancel_requests:
                    provider.cancel_ticket(ticket_id)
                if outcome.tickets_to_submit:
                    provider.submit_tickets(execution.execution_id, outcome.tickets_to_submit)
        for ticket in outcome.tickets_to_submit:
            execution = self._publish(mark_released(execution, ticket.ticket_id, cause.at), cause, history)
        if outcome.state_after in _ENDED_FREEING_VERSION and outcome.state_before not in _ENDED_FREEING_VERSION \
                and not execution.policy.dry_run:
            proposal = execution.definition.proposal
            self._release_version(proposal.proposal_id, proposal.version_no, execution.execution_id, cause,
                                  outcome.state_after.value)
        return execution

    def _release_version(self, proposal_id: str, version_no: int, execution_id: str, cause: Cause,
                         ended_state: str) -> None:
        self._outputs.admission_request(translate.release_request_record(
            proposal_id=proposal_id, version_no=version_no, execution_id=execution_id, cause_id=cause.id,
            correlation_id=cause.correlation_id, issued_at=cause.at, ended_state=ended_state))
