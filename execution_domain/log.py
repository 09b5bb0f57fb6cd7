"""The per-execution event log: one immutable entry per input that changed something.

An entry holds the input (creation, OMS event, release mark, cancel request) and what it
did: ticket changes (including the dependency cancellations and scalings it triggered),
anomalies, tickets released for submission, cancel requests to send, and the aggregate
state before and after. Duplicates produce no entry. Re-applying the inputs in order
(``execution.replay``) reproduces the execution exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

from execution_domain.canonical import format_timestamp, parse_timestamp
from execution_domain.definition import ExecutionDefinition
from execution_domain.events import OrderEvent, OrderEventType
from execution_domain.execution_state import ExecutionState
from execution_domain.request import Actor
from execution_domain.ticket_state import Anomaly, TicketChange

__all__ = [
    "CancelRequest",
    "CreateExecution",
    "ExecutionInput",
    "LogEntry",
    "LogRow",
    "ReleaseMark",
    "input_from_primitive",
    "input_time",
]


@dataclass(frozen=True, slots=True)
class CreateExecution:
    definition: ExecutionDefinition

    @property
    def at(self) -> datetime:
        return self.definition.created_at

    def to_primitive(self) -> dict[str, Any]:
        return {"type": "EXECUTION_CREATED", "definition": self.definition.to_primitive()}


@dataclass(frozen=True, slots=True)
class ReleaseMark:
    """The processor handed a released ticket to the OMS."""

    ticket_id: str
    released_at: datetime
    external_order_id: str | None = None

    @property
    def at(self) -> datetime:
        return self.released_at

    def to_primitive(self) -> dict[str, Any]:
        return {
            "type": "TICKET_RELEASED",
            "ticket_id": self.ticket_id,
            "released_at": format_timestamp(self.released_at),
            "external_order_id": self.external_order_id,
        }


@dataclass(frozen=True, slots=True)
class CancelRequest:
    """Cancel the execution. ``command_id`` makes a redelivered request a no-op."""

    command_id: str
    requested_at: datetime
    actor: Actor
    reason: str | None = None

    @property
    def at(self) -> datetime:
        return self.requested_at

    def to_primitive(self) -> dict[str, Any]:
        return {
            "type": "CANCEL_REQUESTED",
            "command_id": self.command_id,
            "requested_at": format_timestamp(self.requested_at),
            "actor": self.actor.to_primitive(),
            "reason": self.reason,
        }


ExecutionInput: TypeAlias = CreateExecution | OrderEvent | ReleaseMark | CancelRequest


def _input_to_primitive(value: ExecutionInput) -> dict[str, Any]:
    if isinstance(value, OrderEvent):
        return {"type": "ORDER_EVENT", "event": value.to_primitive()}
    return value.to_primitive()


def input_from_primitive(data: Mapping[str, Any]) -> ExecutionInput:
    kind = data["type"]
    if kind == "ORDER_EVENT":
        return OrderEvent.from_primitive(data["event"])
    if kind == "EXECUTION_CREATED":
        return CreateExecution(ExecutionDefinition.from_primitive(data["definition"]))
    if kind == "TICKET_RELEASED":
        return ReleaseMark(data["ticket_id"], parse_timestamp(data["released_at"]), data["external_order_id"])
    if kind == "CANCEL_REQUESTED":
        return CancelRequest(
            command_id=data["command_id"],
            requested_at=parse_timestamp(data["requested_at"]),
            actor=Actor.from_primitive(data["actor"]),
            reason=data["reason"],
        )
    raise ValueError(f"unknown log input type {kind!r}")


def input_time(value: ExecutionInput) -> datetime:
    return value.occurred_at if isinstance(value, OrderEvent) else value.at


@dataclass(frozen=True, slots=True)
class LogRow:
    """One flat line of an entry, for adapters that store or publish the log row by row.

    ``kind``: EXECUTION_CREATED, EXECUTION_CANCEL_REQUESTED, a TicketEventKind value (a ticket
    change), ANOMALY, RELEASED_FOR_SUBMISSION, CANCEL_TO_SEND or EXECUTION_STATE_CHANGED.
    ``from_state``/``to_state`` are TicketState symbols on ticket rows, ExecutionState symbols on
    execution rows; ``to_state`` is None when the state did not change.
    """

    kind: str
    occurred_at: datetime
    ticket_id: str | None = None
    event_type: OrderEventType | None = None
    event_id: str | None = None
    from_state: str | None = None
    to_state: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class LogEntry:
    seq: int
    recorded_at: datetime  # the input's own time (event occurred_at, command time), never a clock read
    input: ExecutionInput
    changes: tuple[TicketChange, ...]
    anomalies: tuple[Anomaly, ...]
    released_for_submission: tuple[str, ...]  # ticket ids the processor must now submit
    cancel_requests: tuple[str, ...]  # ticket ids whose OMS order must be cancelled
    state_before: ExecutionState | None  # None for the creation entry
    state_after: ExecutionState

    @property
    def row_count(self) -> int:
        """len(self.rows()), without building them."""
        opening = 1 if isinstance(self.input, (CreateExecution, CancelRequest)) else 0
        state_row = 1 if self.state_before is not None and self.state_before is not self.state_after else 0
        return (opening + len(self.changes) + len(self.anomalies) + len(self.released_for_submission)
                + len(self.cancel_requests) + state_row)

    def rows(self) -> tuple[LogRow, ...]:
        at = self.recorded_at
        value = self.input
        event = value if isinstance(value, OrderEvent) else None
        event_type = None if event is None else event.event_type
        rows: list[LogRow] = []
        if isinstance(value, CreateExecution):
            rows.append(LogRow("EXECUTION_CREATED", at, to_state=self.state_after.value))
        elif isinstance(value, CancelRequest):
            rows.append(LogRow("EXECUTION_CANCEL_REQUESTED", at, reason=value.reason))
        for change in self.changes:
            from_event = event is not None and change.event_id == event.event_id
            details = [change.note, ", ".join(change.flags), event.details.reason if from_event and event else None]
            rows.append(
                LogRow(
                    change.kind.value,
                    at,
                    change.ticket_id,
                    event_type if from_event else None,
                    change.event_id,
                    change.from_state.value,
                    None if change.to_state is change.from_state else change.to_state.value,
                    "; ".join(part for part in details if part) or None,
                )
            )
        for anomaly in self.anomalies:
            rows.append(
                LogRow(
                    "ANOMALY",
                    at,
                    anomaly.ticket_id,
                    event_type,
                    anomaly.event_id,
                    None if anomaly.from_state is None else anomaly.from_state.value,
                    None,
                    f"{anomaly.code.value}: {anomaly.reason}",
                )
            )
        rows.extend(LogRow("RELEASED_FOR_SUBMISSION", at, ticket_id) for ticket_id in self.released_for_submission)
        rows.extend(LogRow("CANCEL_TO_SEND", at, ticket_id) for ticket_id in self.cancel_requests)
        if self.state_before is not None and self.state_before is not self.state_after:
            before, after = self.state_before.value, self.state_after.value
            rows.append(LogRow("EXECUTION_STATE_CHANGED", at, from_state=before, to_state=after))
        return tuple(rows)

    def to_primitive(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "recorded_at": format_timestamp(self.recorded_at),
            "input": _input_to_primitive(self.input),
            "changes": [change.to_primitive() for change in self.changes],
            "anomalies": [anomaly.to_primitive() for anomaly in self.anomalies],
            "released_for_submission": list(self.released_for_submission),
            "cancel_requests": list(self.cancel_requests),
            "state_before": None if self.state_before is None else self.state_before.value,
            "state_after": self.state_after.value,
        }

    @classmethod
    def from_primitive(cls, data: Mapping[str, Any]) -> LogEntry:
        return cls(
            seq=data["seq"],
            recorded_at=parse_timestamp(data["recorded_at"]),
            input=input_from_primitive(data["input"]),
            changes=tuple(TicketChange.from_primitive(item) for item in data["changes"]),
            anomalies=tuple(Anomaly.from_primitive(item) for item in data["anomalies"]),
            released_for_submission=tuple(data["released_for_submission"]),
            cancel_requests=tuple(data["cancel_requests"]),
            state_before=None if data["state_before"] is None else ExecutionState(data["state_before"]),
            state_after=ExecutionState(data["state_after"]),
        )
