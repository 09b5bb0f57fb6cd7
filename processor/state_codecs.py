"""How the processor's stores encode their values (JSON; internal state, not a wire contract).

The executions store keeps an execution in pieces, each written once or replaced whole, none
growing with the execution's history (see docs/design.md, "State"):

    d/<execution_id>                         its definition (tickets, policy, origin), written at creation
    x/<execution_id>                         its head: each ticket's current state and the counters
    l/<execution_id>/<seq, 10 digits>        one log entry, written once
    f/<execution_id>/<ticket_id>/<fill_id>   a fill applied (per-fill dedup)
    e/<execution_id>/<ticket_id>/<event_id>  the reports processed under an event id (event dedup)
    u/<execution_id>\x1f<ticket_id>\x1f<event_id>  reports that reached no ticket
    c/<execution_id>/<command_id>            a cancel command handled

Every codec is an object owned by one task: any cache it keeps dies with the task. A store and
its changelog outlive a release, so decoding keeps reading what earlier releases wrote: an
execution stored whole by the first release (definition, log and history in one value) is read
as `LegacyExecution`, which the processor splits into the pieces above on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import orjson

from execution_domain import Execution, LogEntry, ProposalArtifact, parse_artifact
from execution_domain.definition import ExecutionDefinition
from execution_domain.events import ReportKey
from execution_domain.fills import Fill, FillReportingMode
from execution_domain.history import UnroutedKey
from execution_domain.log import CreateExecution
from processor.create_request import CreateRequest


class DefinitionCodec:
    def encode(self, value: ExecutionDefinition) -> bytes:
        return orjson.dumps(value.to_primitive())

    def decode(self, data: bytes) -> ExecutionDefinition:
        return ExecutionDefinition.from_primitive(orjson.loads(data))


class LegacyExecution(Exception):
    """An execution stored whole by the first release; `parts` are its pieces in today's layout.

    Raised by `HeadCodec.decode` (so the legacy value is never cached as a head): the caller
    writes the parts and the head, after which the execution reads like any other."""

    def __init__(self, parts: LegacyParts) -> None:
        super().__init__(f"execution {parts.execution.execution_id} is stored in the first release's layout")
        self.parts = parts


@dataclass(frozen=True, slots=True)
class LegacyParts:
    execution: Execution
    entries: tuple[LogEntry, ...]
    fills: tuple[tuple[str, Fill], ...]
    reports: tuple[tuple[str, str, tuple[ReportKey, ...]], ...]
    unrouted: tuple[tuple[UnroutedKey, tuple[ReportKey, ...]], ...]
    commands: tuple[str, ...]


class HeadCodec:
    """An execution's head; decoding needs its definition (`definition_of`, the task's d/ store)."""

    def __init__(self, definition_of: Callable[[str], ExecutionDefinition | None]) -> None:
        self._definition_of = definition_of

    def encode(self, value: Execution) -> bytes:
        return orjson.dumps(value.to_primitive())

    def decode(self, data: bytes) -> Execution:
        raw = orjson.loads(data)
        if "definition" in raw:
            raise LegacyExecution(legacy_parts(raw))
        definition = self._definition_of(raw["execution_id"])
        if definition is None:
            raise LookupError(f"execution {raw['execution_id']} has a head but no definition")
        return Execution.from_primitive(raw, definition)


def legacy_parts(raw: Mapping[str, Any]) -> LegacyParts:
    """The first release's stored execution (``Execution.to_primitive()`` of that release: definition,
    tickets with their seen events and fills, the whole log, handled commands, unrouted events)."""
    definition = ExecutionDefinition.from_primitive(raw["definition"])
    entries = tuple(LogEntry.from_primitive(item) for item in raw["log"])
    last = entries[-1]
    head = {
        "execution_id": definition.execution_id,
        "tickets": raw["tickets"],  # TicketRecord.from_primitive ignores seen_events; the ledger counts its fills
        "state": raw["state"],
        "seq": last.seq,
        "row_count": sum(entry.row_count for entry in entries),
        "anomaly_count": sum(len(entry.anomalies) for entry in entries),
        "cancel_request": raw["cancel_request"],
        "updated_at": None,
    }
    execution = replace(Execution.from_primitive(head, definition), updated_at=last.recorded_at)
    fills: list[tuple[str, Fill]] = []
    reports: list[tuple[str, str, tuple[ReportKey, ...]]] = []
    for ticket in raw["tickets"]:
        ledger = ticket["ledger"]
        if ledger["mode"] == FillReportingMode.PER_FILL.value:
            fills.extend((ticket["ticket_id"], Fill.from_primitive(fill)) for fill in ledger.get("fills", ()))
        for seen in ticket.get("seen_events", ()):
            keys = tuple(ReportKey.from_primitive(key) for key in seen["reports"])
            reports.append((ticket["ticket_id"], seen["event_id"], keys))
    unrouted = tuple(
        ((item["execution_id"], item["ticket_id"], item["event_id"]),
         tuple(ReportKey.from_primitive(key) for key in item["reports"]))
        for item in raw["unrouted_events"]
    )
    return LegacyParts(execution, entries, tuple(fills), tuple(reports), unrouted, tuple(raw["handled_commands"]))


class LogEntryCodec:
    """One log entry. The creation entry refers to the definition (stored once under d/) instead of
    carrying it: `definition_of` gives it back when the entry is read."""

    def __init__(self, definition_of: Callable[[str], ExecutionDefinition | None]) -> None:
        self._definition_of = definition_of

    def encode(self, value: LogEntry) -> bytes:
        primitive = value.to_primitive()
        if isinstance(value.input, CreateExecution):
            primitive["input"] = {"type": "EXECUTION_CREATED", "definition_of": value.input.definition.execution_id}
        return orjson.dumps(primitive)

    def decode(self, data: bytes) -> LogEntry:
        raw = orjson.loads(data)
        reference = raw["input"].get("definition_of")
        if reference is not None:
            definition = self._definition_of(reference)
            if definition is None:
                raise LookupError(f"log entry refers to the definition of {reference}, which is not stored")
            raw["input"] = {"type": "EXECUTION_CREATED", "definition": definition.to_primitive()}
        return LogEntry.from_primitive(raw)


class FillCodec:
    def encode(self, value: Fill) -> bytes:
        return orjson.dumps(value.to_primitive())

    def decode(self, data: bytes) -> Fill:
        return Fill.from_primitive(orjson.loads(data))


class ReportsCodec:
    """The reports processed under one event id, oldest first."""

    def encode(self, value: tuple[ReportKey, ...]) -> bytes:
        return orjson.dumps([key.to_primitive() for key in value])

    def decode(self, data: bytes) -> tuple[ReportKey, ...]:
        return tuple(ReportKey.from_primitive(key) for key in orjson.loads(data))


class MarkerCodec:
    """A key whose presence is the fact (a handled command)."""

    def encode(self, value: bool) -> bytes:
        return b"1"

    def decode(self, data: bytes) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class Waiter:
    """A create command waiting for its execution's admission, answered when it is decided."""

    command_id: str
    correlation_id: str | None


@dataclass(frozen=True, slots=True)
class PendingAdmission:
    """An execution whose create is being admitted by its proposal's partition."""

    command_id: str  # the first create's: the admission request's id
    correlation_id: str | None
    issued_at: str  # ISO 8601, the first create's issued_at
    request: CreateRequest
    waiters: tuple[Waiter, ...]

    @property
    def request_hash(self) -> str:
        return self.request.request_hash

    def with_waiter(self, waiter: Waiter) -> PendingAdmission:
        return PendingAdmission(self.command_id, self.correlation_id, self.issued_at, self.request,
                                (*self.waiters, waiter))


class PendingAdmissionCodec:
    def encode(self, value: PendingAdmission) -> bytes:
        return orjson.dumps({
            "command_id": value.command_id,
            "correlation_id": value.correlation_id,
            "issued_at": value.issued_at,
            "request": value.request.to_primitive(),
            "request_hash": value.request.request_hash,
            "waiters": [[waiter.command_id, waiter.correlation_id] for waiter in value.waiters],
        })

    def decode(self, data: bytes) -> PendingAdmission:
        raw = orjson.loads(data)
        return PendingAdmission(
            command_id=raw["command_id"],
            correlation_id=raw["correlation_id"],
            issued_at=raw["issued_at"],
            request=CreateRequest.from_primitive(raw["request"]),
            waiters=tuple(Waiter(command_id, correlation_id) for command_id, correlation_id in raw["waiters"]),
        )


@dataclass(frozen=True, slots=True)
class Reservation:
    """Who holds (or last held) a proposal version, and how many executions of it were admitted."""

    execution_id: str
    live: bool
    ended_state: str | None = None  # the state it ended in once no longer live
    attempts: int = 1  # executions of the version admitted so far (dry runs excluded)


class ReservationCodec:
    def encode(self, value: Reservation) -> bytes:
        if value.live:
            return orjson.dumps({"execution_id": value.execution_id, "live": True, "attempts": value.attempts})
        return orjson.dumps({"execution_id": value.execution_id, "live": False, "ended_state": value.ended_state,
                             "attempts": value.attempts})

    def decode(self, data: bytes) -> Reservation:
        raw = orjson.loads(data)
        # A reservation from before attempts were counted stands for one admitted execution.
        return Reservation(raw["execution_id"], raw["live"], raw.get("ended_state"), raw.get("attempts", 1))


class ArtifactCodec:
    """A stored proposal version: the JSON of its primitive form, validated (hash included) on read."""

    def encode(self, value: ProposalArtifact) -> bytes:
        return orjson.dumps(value.to_primitive())

    def decode(self, data: bytes) -> ProposalArtifact:
        return parse_artifact(orjson.loads(data))


@dataclass(frozen=True, slots=True)
class WaitingAdmission:
    """An ADMIT request for a proposal version not known yet, arrived while the task had not read its
    approved-proposals partition to the end: it waits until the version arrives or the partition is
    read to `until` (its end when the request arrived), then is decided (processor.admission)."""

    request: Mapping[str, Any]  # the AdmissionRequest record (never with an inline artifact)
    trace_headers: tuple[tuple[str, bytes], ...]  # the request's, for the decision it gets
    until: int
    since: float  # when it began to wait (Unix seconds): the bound holds across restarts

    @property
    def request_id(self) -> str:
        return str(self.request["request_id"])


class WaitingAdmissionsCodec:
    """The admissions waiting in one task, oldest first, under one key (a handful at most)."""

    def encode(self, value: tuple[WaitingAdmission, ...]) -> bytes:
        return orjson.dumps([{
            "request": {**waiting.request, "issued_at": waiting.request["issued_at"].isoformat()},
            "trace_headers": [[name, data.decode("latin-1")] for name, data in waiting.trace_headers],
            "until": waiting.until,
            "since": waiting.since,
        } for waiting in value])

    def decode(self, data: bytes) -> tuple[WaitingAdmission, ...]:
        return tuple(WaitingAdmission(
            request={**raw["request"], "issued_at": datetime.fromisoformat(raw["request"]["issued_at"])},
            trace_headers=tuple((name, text.encode("latin-1")) for name, text in raw["trace_headers"]),
            until=raw["until"],
            since=raw["since"],
        ) for raw in orjson.loads(data))
