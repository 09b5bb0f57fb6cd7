"""The ticket state machine: RFC 7.2 states plus PENDING_CANCEL, as a transition table.

``TICKET_TRANSITIONS`` maps (state, event kind) to an ``Edge``. A missing key means no rule
allows the event: the state is left unchanged and an anomaly is recorded. Nothing here
raises for a bad event; every outcome is a value (``TicketStep``).

PENDING_CANCEL exists because FIX has it: a cancel is a request that can lose the race to
a fill or be refused ("too late to cancel"); CANCEL_REJECTED returns the ticket to the
state it had before the request (``pre_cancel_state``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from execution_domain.canonical import (
    decimal_from_str,
    decimal_to_str,
    format_timestamp,
    parse_timestamp,
)
from execution_domain.events import OrderEvent, OrderEventType, ReportKey
from execution_domain.fills import Fill, FillLedger, FillVerdict

__all__ = [
    "Anomaly",
    "AnomalyCode",
    "Derived",
    "Edge",
    "TERMINAL_TICKET_STATES",
    "TICKET_TRANSITIONS",
    "TicketChange",
    "TicketEventKind",
    "TicketInput",
    "TicketRecord",
    "TicketState",
    "TicketStep",
    "StepVerdict",
    "apply_ticket_input",
    "is_allowed",
]


class TicketState(StrEnum):
    PENDING_SUBMIT = "PENDING_SUBMIT"
    SUBMITTED = "SUBMITTED"
    ACCEPTED = "ACCEPTED"
    PARTIAL_FILL = "PARTIAL_FILL"
    PENDING_CANCEL = "PENDING_CANCEL"  # added: a cancel request is in flight (FIX OrdStatus 6)
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"


TERMINAL_TICKET_STATES = frozenset({TicketState.FILLED, TicketState.CANCELLED, TicketState.REJECTED})


class TicketEventKind(StrEnum):
    # From the OMS (OrderEvent.event_type)
    ORDER_ACCEPTED = "ORDER_ACCEPTED"
    ORDER_REJECTED = "ORDER_REJECTED"
    PARTIAL_FILL = "PARTIAL_FILL"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    PENDING_CANCEL = "PENDING_CANCEL"
    CANCEL_REJECTED = "CANCEL_REJECTED"
    # From this service
    TICKET_RELEASED = "TICKET_RELEASED"  # the processor handed the ticket to the OMS
    CANCEL_REQUESTED = "CANCEL_REQUESTED"  # the execution is being cancelled
    DEPENDENCY_FAILED = "DEPENDENCY_FAILED"  # a dependency ended without funding this ticket
    DEPENDENCY_SCALED = "DEPENDENCY_SCALED"  # a dependency ended partially filled: quantity scaled down

    @classmethod
    def of_event(cls, event_type: OrderEventType) -> TicketEventKind:
        return cls(event_type.value)


class Derived(StrEnum):
    """Edges whose result is computed rather than fixed."""

    FILL = "FILL"  # record the fill; PARTIAL_FILL or FILLED by quantity
    FILL_PENDING_CANCEL = "FILL_PENDING_CANCEL"  # record; FILLED if complete, else stay PENDING_CANCEL
    LATE_FILL = "LATE_FILL"  # record after CANCELLED; FILLED if complete, else stay CANCELLED
    RESTORE_PRE_CANCEL = "RESTORE_PRE_CANCEL"  # back to the state before the cancel request
    ACK_PENDING_CANCEL = "ACK_PENDING_CANCEL"  # stay PENDING_CANCEL; restore target becomes ACCEPTED
    REJECT_PENDING_CANCEL = "REJECT_PENDING_CANCEL"  # REJECTED if nothing filled, else anomaly
    SCALE = "SCALE"  # stay PENDING_SUBMIT with a smaller order quantity
    RELEASE_AFTER_CANCEL = "RELEASE_AFTER_CANCEL"  # duplicate if it was released, else anomaly + cancel
    KEEP = "KEEP"  # applied and logged; the state does not change
    DUPLICATE = "DUPLICATE"  # already done: nothing changes, nothing is logged


@dataclass(frozen=True, slots=True)
class Edge:
    target: TicketState | Derived
    why: str = ""
    requires_release: bool = False  # from PENDING_SUBMIT: only for a ticket released for submission


S, K, D = TicketState, TicketEventKind, Derived

# Only this service's own cancel request enters PENDING_CANCEL. An OMS pending-cancel or cancel-reject
# with no request of ours pending is a stale report (it lost a delivery race with the reject or fill
# that ended our request) or a cancel tried at the OMS desk: recorded, never acted on, so that a
# late PENDING_CANCEL cannot re-open a cancel that was already refused.
_NOT_OUR_CANCEL = "no cancel of ours is pending: stale or OMS-desk cancel report, recorded only"

# fmt: off
TICKET_TRANSITIONS: Mapping[tuple[TicketState, TicketEventKind], Edge] = {
    # PENDING_SUBMIT: generated, not yet handed to the OMS
    (S.PENDING_SUBMIT, K.TICKET_RELEASED):   Edge(S.SUBMITTED, "handed to the OMS once its dependencies funded it", True),
    (S.PENDING_SUBMIT, K.CANCEL_REQUESTED):  Edge(S.CANCELLED, "never released: nothing to cancel at the OMS"),
    (S.PENDING_SUBMIT, K.DEPENDENCY_FAILED): Edge(S.CANCELLED, "its funding failed: cancelled without release"),
    (S.PENDING_SUBMIT, K.DEPENDENCY_SCALED): Edge(D.SCALE, "dependency partially filled: scaled to the funded fraction"),
    (S.PENDING_SUBMIT, K.ORDER_ACCEPTED):    Edge(S.ACCEPTED, "OMS report raced our release mark: release implied", True),
    (S.PENDING_SUBMIT, K.ORDER_REJECTED):    Edge(S.REJECTED, "OMS report raced our release mark: release implied", True),
    (S.PENDING_SUBMIT, K.PARTIAL_FILL):      Edge(D.FILL, "OMS report raced our release mark: release and acceptance implied", True),
    (S.PENDING_SUBMIT, K.FILLED):            Edge(D.FILL, "OMS report raced our release mark: release and acceptance implied", True),
    (S.PENDING_SUBMIT, K.CANCELLED):         Edge(S.CANCELLED, "OMS report raced our release mark: release implied", True),
    # SUBMITTED: handed to the OMS, no acknowledgement yet
    (S.SUBMITTED, K.TICKET_RELEASED):        Edge(D.DUPLICATE, "already released"),
    (S.SUBMITTED, K.CANCEL_REQUESTED):       Edge(S.PENDING_CANCEL),
    (S.SUBMITTED, K.ORDER_ACCEPTED):         Edge(S.ACCEPTED),
    (S.SUBMITTED, K.ORDER_REJECTED):         Edge(S.REJECTED),
    (S.SUBMITTED, K.PARTIAL_FILL):           Edge(D.FILL, "fill before acknowledgement: acceptance implied"),
    (S.SUBMITTED, K.FILLED):                 Edge(D.FILL, "fill before acknowledgement: acceptance implied"),
    (S.SUBMITTED, K.CANCELLED):              Edge(S.CANCELLED, "unsolicited cancel (IOC/FOK, expiry, OMS desk)"),
    (S.SUBMITTED, K.PENDING_CANCEL):         Edge(D.KEEP, _NOT_OUR_CANCEL),
    (S.SUBMITTED, K.CANCEL_REJECTED):        Edge(D.KEEP, _NOT_OUR_CANCEL),
    # ACCEPTED: acknowledged, nothing filled
    (S.ACCEPTED, K.TICKET_RELEASED):         Edge(D.DUPLICATE, "already released"),
    (S.ACCEPTED, K.CANCEL_REQUESTED):        Edge(S.PENDING_CANCEL),
    (S.ACCEPTED, K.ORDER_ACCEPTED):          Edge(D.KEEP, "repeated acknowledgement (status report)"),
    (S.ACCEPTED, K.ORDER_REJECTED):          Edge(S.REJECTED, "venue rejected an order the OMS had acknowledged"),
    (S.ACCEPTED, K.PARTIAL_FILL):            Edge(D.FILL),
    (S.ACCEPTED, K.FILLED):                  Edge(D.FILL),
    (S.ACCEPTED, K.CANCELLED):               Edge(S.CANCELLED, "unsolicited cancel (IOC/FOK, expiry, OMS desk)"),
    (S.ACCEPTED, K.PENDING_CANCEL):          Edge(D.KEEP, _NOT_OUR_CANCEL),
    (S.ACCEPTED, K.CANCEL_REJECTED):         Edge(D.KEEP, _NOT_OUR_CANCEL),
    # PARTIAL_FILL: some quantity filled, order still working
    (S.PARTIAL_FILL, K.TICKET_RELEASED):     Edge(D.DUPLICATE, "already released"),
    (S.PARTIAL_FILL, K.CANCEL_REQUESTED):    Edge(S.PENDING_CANCEL),
    (S.PARTIAL_FILL, K.ORDER_ACCEPTED):      Edge(D.KEEP, "late acknowledgement never regresses a filling order"),
    (S.PARTIAL_FILL, K.PARTIAL_FILL):        Edge(D.FILL),
    (S.PARTIAL_FILL, K.FILLED):              Edge(D.FILL),
    (S.PARTIAL_FILL, K.CANCELLED):           Edge(S.CANCELLED, "remainder cancelled; filled quantity stays"),
    (S.PARTIAL_FILL, K.PENDING_CANCEL):      Edge(D.KEEP, _NOT_OUR_CANCEL),
    (S.PARTIAL_FILL, K.CANCEL_REJECTED):     Edge(D.KEEP, _NOT_OUR_CANCEL),
    # PENDING_CANCEL: cancel requested, not yet confirmed
    (S.PENDING_CANCEL, K.TICKET_RELEASED):   Edge(D.DUPLICATE, "already released"),
    (S.PENDING_CANCEL, K.CANCEL_REQUESTED):  Edge(D.DUPLICATE, "cancel already pending"),
    (S.PENDING_CANCEL, K.ORDER_ACCEPTED):    Edge(D.ACK_PENDING_CANCEL, "late acknowledgement; a refused cancel now returns to ACCEPTED"),
    (S.PENDING_CANCEL, K.ORDER_REJECTED):    Edge(D.REJECT_PENDING_CANCEL, "order rejected before the cancel reached it"),
    (S.PENDING_CANCEL, K.PARTIAL_FILL):      Edge(D.FILL_PENDING_CANCEL, "fill while the cancel is in flight"),
    (S.PENDING_CANCEL, K.FILLED):            Edge(D.FILL_PENDING_CANCEL, "fill while the cancel is in flight"),
    (S.PENDING_CANCEL, K.CANCELLED):         Edge(S.CANCELLED),
    (S.PENDING_CANCEL, K.PENDING_CANCEL):    Edge(D.KEEP, "OMS confirms the cancel is pending"),
    (S.PENDING_CANCEL, K.CANCEL_REJECTED):   Edge(D.RESTORE_PRE_CANCEL, "cancel refused: back to the state before the request"),
    # FILLED: terminal; nothing in this RFC's event set leaves it (trade busts are out of scope)
    (S.FILLED, K.TICKET_RELEASED):           Edge(D.DUPLICATE, "already released"),
    (S.FILLED, K.ORDER_ACCEPTED):            Edge(D.KEEP, "late acknowledgement never regresses a filled order"),
    (S.FILLED, K.PARTIAL_FILL):              Edge(D.FILL, "a further distinct fill: recorded and flagged as overfill"),
    (S.FILLED, K.FILLED):                    Edge(D.FILL, "a further distinct fill: recorded and flagged as overfill"),
    (S.FILLED, K.PENDING_CANCEL):            Edge(D.KEEP, "stale pending-cancel report: the fill won the race"),
    (S.FILLED, K.CANCEL_REJECTED):           Edge(D.KEEP, "too late to cancel: the fill won the race"),
    # CANCELLED: terminal for the order flow, but fills that happened before the cancel still count
    (S.CANCELLED, K.TICKET_RELEASED):        Edge(D.RELEASE_AFTER_CANCEL, "the processor submitted a ticket cancelled before release"),
    (S.CANCELLED, K.ORDER_ACCEPTED):         Edge(D.KEEP, "late acknowledgement never reopens a cancelled order"),
    (S.CANCELLED, K.PARTIAL_FILL):           Edge(D.LATE_FILL, "late fill after the cancel: real quantity, recorded"),
    (S.CANCELLED, K.FILLED):                 Edge(D.LATE_FILL, "late fill after the cancel: real quantity, recorded"),
    (S.CANCELLED, K.CANCELLED):              Edge(D.KEEP, "repeated cancel confirmation"),
    (S.CANCELLED, K.PENDING_CANCEL):         Edge(D.KEEP, "stale pending-cancel report: already cancelled"),
    # REJECTED: absorbing
    (S.REJECTED, K.TICKET_RELEASED):         Edge(D.DUPLICATE, "already released"),
}
# fmt: on

del S, K, D


def is_allowed(state: TicketState, kind: TicketEventKind) -> bool:
    return (state, kind) in TICKET_TRANSITIONS


class AnomalyCode(StrEnum):
    INVALID_TRANSITION = "INVALID_TRANSITION"  # no edge for (state, event)
    NOT_RELEASED = "NOT_RELEASED"  # OMS report or release mark for a ticket not released for submission
    EVENT_ID_REUSED = "EVENT_ID_REUSED"  # same event_id, different content
    FILL_CONFLICT = "FILL_CONFLICT"  # same fill_id (or cumulative level), different quantity or price
    STALE_FILL_REPORT = "STALE_FILL_REPORT"  # cumulative quantity below the known one
    MALFORMED_FILL = "MALFORMED_FILL"
    MIXED_FILL_REPORTING = "MIXED_FILL_REPORTING"
    FILL_WITHOUT_DETAILS = "FILL_WITHOUT_DETAILS"  # fill event with no quantity that is not a confirmation
    RELEASED_AFTER_CANCEL = "RELEASED_AFTER_CANCEL"  # a cancel request is sent to the OMS
    UNKNOWN_TICKET = "UNKNOWN_TICKET"
    WRONG_EXECUTION = "WRONG_EXECUTION"
    NOTHING_TO_CANCEL = "NOTHING_TO_CANCEL"


@dataclass(frozen=True, slots=True)
class Anomaly:
    code: AnomalyCode
    reason: str
    ticket_id: str | None = None
    from_state: TicketState | None = None
    kind: TicketEventKind | None = None
    event_id: str | None = None

    def to_primitive(self) -> dict[str, Any]:
        return {
            "code": self.code.value,
            "reason": self.reason,
            "ticket_id": self.ticket_id,
            "from_state": None if self.from_state is None else self.from_state.value,
            "kind": None if self.kind is None else self.kind.value,
            "event_id": self.event_id,
        }

    @classmethod
    def from_primitive(cls, data: Mapping[str, Any]) -> Anomaly:
        return cls(
            code=AnomalyCode(data["code"]),
            reason=data["reason"],
            ticket_id=data["ticket_id"],
            from_state=None if data["from_state"] is None else TicketState(data["from_state"]),
            kind=None if data["kind"] is None else TicketEventKind(data["kind"]),
            event_id=data["event_id"],
        )


@dataclass(frozen=True, slots=True)
class TicketChange:
    """One applied event on one ticket (``from_state == to_state`` for KEEP/SCALE and same-state fills)."""

    ticket_id: str
    kind: TicketEventKind
    from_state: TicketState
    to_state: TicketState
    filled_qty: Decimal  # after
    order_qty: Decimal  # after
    event_id: str | None = None
    fill: Fill | None = None
    flags: tuple[str, ...] = ()  # IMPLIED_RELEASE, IMPLIED_ACCEPT, OVERFILL, LATE_FILL, CANCEL_LOST_RACE, ...
    note: str = ""

    def to_primitive(self) -> dict[str, Any]:
        return {
            "ticket_id": self.ticket_id,
            "kind": self.kind.value,
            "from_state": self.from_state.value,
            "to_state": self.to_state.value,
            "filled_qty": decimal_to_str(self.filled_qty),
            "order_qty": decimal_to_str(self.order_qty),
            "event_id": self.event_id,
            "fill": None if self.fill is None else self.fill.to_primitive(),
            "flags": list(self.flags),
            "note": self.note,
        }

    @classmethod
    def from_primitive(cls, data: Mapping[str, Any]) -> TicketChange:
        return cls(
            ticket_id=data["ticket_id"],
            kind=TicketEventKind(data["kind"]),
            from_state=TicketState(data["from_state"]),
            to_state=TicketState(data["to_state"]),
            filled_qty=decimal_from_str(data["filled_qty"]),
            order_qty=decimal_from_str(data["order_qty"]),
            event_id=data["event_id"],
            fill=None if data["fill"] is None else Fill.from_primitive(data["fill"]),
            flags=tuple(data["flags"]),
            note=data["note"],
        )


_EMPTY_LEDGER = FillLedger()


@dataclass(frozen=True, slots=True)
class TicketRecord:
    """Where one ticket stands. Immutable; every change returns a new record."""

    ticket_id: str
    state: TicketState
    order_qty: Decimal  # what fills count against; below the ticket's quantity only when scaled down
    ledger: FillLedger = _EMPTY_LEDGER
    released_for_submission: bool = False  # released for submission (dependencies funded, not a dry run)
    submitted_at: datetime | None = None  # when it was handed to the OMS (TICKET_RELEASED, or implied by a report)
    last_event_at: datetime | None = None  # occurred_at of the last OMS event applied
    external_order_id: str | None = None
    pre_cancel_state: TicketState | None = None  # where CANCEL_REJECTED returns to
    reason: str | None = None  # last rejection or cancel reason

    @property
    def filled_qty(self) -> Decimal:
        return self.ledger.filled_qty

    @property
    def avg_price(self) -> Decimal | None:
        return self.ledger.avg_price

    @property
    def overfill_qty(self) -> Decimal:
        excess = self.ledger.filled_qty - self.order_qty
        return excess if excess > 0 else Decimal(0)

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_TICKET_STATES

    @property
    def is_submitted(self) -> bool:
        return self.submitted_at is not None

    def to_primitive(self) -> dict[str, Any]:
        return {
            "ticket_id": self.ticket_id,
            "state": self.state.value,
            "order_qty": decimal_to_str(self.order_qty),
            "ledger": self.ledger.to_primitive(),
            "released_for_submission": self.released_for_submission,
            "submitted_at": None if self.submitted_at is None else format_timestamp(self.submitted_at),
            "last_event_at": None if self.last_event_at is None else format_timestamp(self.last_event_at),
            "external_order_id": self.external_order_id,
            "pre_cancel_state": None if self.pre_cancel_state is None else self.pre_cancel_state.value,
            "reason": self.reason,
        }

    @classmethod
    def from_primitive(cls, data: Mapping[str, Any]) -> TicketRecord:
        return cls(
            ticket_id=data["ticket_id"],
            state=TicketState(data["state"]),
            order_qty=decimal_from_str(data["order_qty"]),
            ledger=FillLedger.from_primitive(data["ledger"]),
            released_for_submission=data["released_for_submission"],
            submitted_at=None if data["submitted_at"] is None else parse_timestamp(data["submitted_at"]),
            last_event_at=None if data["last_event_at"] is None else parse_timestamp(data["last_event_at"]),
            external_order_id=data["external_order_id"],
            pre_cancel_state=None if data["pre_cancel_state"] is None else TicketState(data["pre_cancel_state"]),
            reason=data["reason"],
        )


@dataclass(frozen=True, slots=True)
class TicketInput:
    """Something that happens to one ticket: an OMS event or one of this service's commands."""

    kind: TicketEventKind
    at: datetime
    event: OrderEvent | None = None  # set for OMS events
    reason: str | None = None  # for commands (cancel, dependency failure)
    order_qty: Decimal | None = None  # DEPENDENCY_SCALED: the new order quantity
    external_order_id: str | None = None  # TICKET_RELEASED: the OMS order id, when known

    @classmethod
    def from_event(cls, event: OrderEvent) -> TicketInput:
        return cls(TicketEventKind.of_event(event.event_type), event.occurred_at, event)


class StepVerdict(StrEnum):
    APPLIED = "APPLIED"
    DUPLICATE = "DUPLICATE"  # nothing changed; nothing to log
    ANOMALY = "ANOMALY"  # state unchanged; log the anomaly


@dataclass(frozen=True, slots=True)
class TicketStep:
    verdict: StepVerdict
    record: TicketRecord
    change: TicketChange | None = None
    anomaly: Anomaly | None = None
    send_cancel: bool = False  # a cancel request must go to the OMS for this ticket

    @property
    def remembers_report(self) -> bool:
        """Every processed OMS report, applied or not, is remembered by event id for the order's life
        (a redelivery is then a duplicate, not a second anomaly): all but duplicates."""
        return self.verdict is not StepVerdict.DUPLICATE


# --- applying one input --------------------------------------------------------------------


def apply_ticket_input(
    record: TicketRecord,
    given: TicketInput,
    known_reports: tuple[ReportKey, ...] = (),
    known_fill: Fill | None = None,
) -> TicketStep:
    """Apply one input to one ticket. Total: every input yields a step, never an exception.

    What the ticket's history says about an OMS report is passed in, looked up by id by the
    caller: ``known_reports``, the reports already processed under the event's id (none for a new
    id), and ``known_fill``, the fill already applied under the report's fill_id (per-fill mode).
    """
    event = given.event
    if event is not None:
        if known_reports:
            if event.report_key in known_reports:
                return TicketStep(StepVerdict.DUPLICATE, record)
            reason = f"event_id {event.event_id} was already used for another report"
            return _anomaly(record, given, AnomalyCode.EVENT_ID_REUSED, reason)
    edge = TICKET_TRANSITIONS.get((record.state, given.kind))
    if edge is None:
        reason = f"no transition for {given.kind.value} from {record.state.value}"
        return _anomaly(record, given, AnomalyCode.INVALID_TRANSITION, reason)
    if edge.requires_release and not record.released_for_submission:
        return _anomaly(
            record, given, AnomalyCode.NOT_RELEASED, f"{record.ticket_id} has not been released for submission"
        )
    if isinstance(edge.target, TicketState):
        return _move(record, given, edge.target, edge.why)
    if edge.target in _FILL_RULES:
        return _fill(record, given, edge, known_fill)
    return _DERIVED_RULES[edge.target](record, given, edge)


def _oms_event_updates(record: TicketRecord, given: TicketInput) -> tuple[dict[str, Any], list[str]]:
    """Field updates and flags every *applied* OMS report brings (none for our own commands)."""
    event = given.event
    updates: dict[str, Any] = {}
    flags: list[str] = []
    if event is None:
        return updates, flags
    updates["last_event_at"] = event.occurred_at
    if record.submitted_at is None and record.state is TicketState.PENDING_SUBMIT:
        updates["submitted_at"] = event.occurred_at
        flags.append("IMPLIED_RELEASE")
    if event.external_order_id is not None:
        if record.external_order_id is None:
            updates["external_order_id"] = event.external_order_id
        elif event.external_order_id != record.external_order_id:
            flags.append("EXTERNAL_ORDER_ID_CHANGED")  # the first one is kept
    return updates, flags


def _anomaly(
    record: TicketRecord, given: TicketInput, code: AnomalyCode, reason: str, *, send_cancel: bool = False
) -> TicketStep:
    event = given.event
    anomaly = Anomaly(
        code=code,
        reason=reason,
        ticket_id=record.ticket_id,
        from_state=record.state,
        kind=given.kind,
        event_id=None if event is None else event.event_id,
    )
    # The caller remembers the event id, so a redelivery of the same report is a duplicate, not a second anomaly.
    return TicketStep(StepVerdict.ANOMALY, record, anomaly=anomaly, send_cancel=send_cancel)


def _applied(
    before: TicketRecord,
    after: TicketRecord,
    given: TicketInput,
    *,
    fill: Fill | None = None,
    flags: list[str] | tuple[str, ...] = (),
    note: str = "",
    send_cancel: bool = False,
) -> TicketStep:
    change = TicketChange(
        ticket_id=before.ticket_id,
        kind=given.kind,
        from_state=before.state,
        to_state=after.state,
        filled_qty=after.filled_qty,
        order_qty=after.order_qty,
        event_id=None if given.event is None else given.event.event_id,
        fill=fill,
        flags=tuple(flags),
        note=note,
    )
    return TicketStep(StepVerdict.APPLIED, after, change=change, send_cancel=send_cancel)


def _move(record: TicketRecord, given: TicketInput, target: TicketState, why: str) -> TicketStep:
    updates, flags = _oms_event_updates(record, given)
    updates["state"] = target
    kind = given.kind
    send_cancel = False
    if kind is TicketEventKind.TICKET_RELEASED:
        updates["submitted_at"] = given.at
        if given.external_order_id is not None and record.external_order_id is None:
            updates["external_order_id"] = given.external_order_id
    if target is TicketState.PENDING_CANCEL:
        updates["pre_cancel_state"] = record.state
        send_cancel = kind is TicketEventKind.CANCEL_REQUESTED
    else:
        updates["pre_cancel_state"] = None
    reason = given.reason if given.event is None else given.event.details.reason
    if target in (TicketState.CANCELLED, TicketState.REJECTED) and reason is not None:
        updates["reason"] = reason
    return _applied(record, replace(record, **updates), given, flags=flags, note=why, send_cancel=send_cancel)


# --- derived edges ---------------------------------------------------------------------------


def _fill(record: TicketRecord, given: TicketInput, edge: Edge, known_fill: Fill | None) -> TicketStep:
    event = given.event
    assert event is not None  # fill kinds only come from OMS events
    result = record.ledger.record(event.details, known_fill)
    verdict = result.verdict
    if verdict is FillVerdict.DUPLICATE:
        return TicketStep(StepVerdict.DUPLICATE, record)
    if verdict is FillVerdict.NO_DETAILS:
        if given.kind is TicketEventKind.FILLED and record.filled_qty >= record.order_qty:
            return _keep(record, given, Edge(Derived.KEEP, "FILLED without details confirms the known fills"))
        return _anomaly(record, given, AnomalyCode.FILL_WITHOUT_DETAILS, result.reason)
    if verdict is not FillVerdict.APPLIED:
        return _anomaly(record, given, _FILL_ANOMALIES[verdict], result.reason)

    updates, flags = _oms_event_updates(record, given)
    updates["ledger"] = result.ledger
    complete = result.ledger.filled_qty >= record.order_qty
    rule = edge.target
    if rule is Derived.FILL:
        if record.state in (TicketState.PENDING_SUBMIT, TicketState.SUBMITTED):
            flags.append("IMPLIED_ACCEPT")
        updates["state"] = TicketState.FILLED if complete else TicketState.PARTIAL_FILL
    elif rule is Derived.FILL_PENDING_CANCEL:
        if complete:
            updates["state"] = TicketState.FILLED
            updates["pre_cancel_state"] = None
            flags.append("CANCEL_LOST_RACE")
        else:
            updates["pre_cancel_state"] = TicketState.PARTIAL_FILL
    else:  # LATE_FILL
        flags.append("LATE_FILL")
        if complete:
            updates["state"] = TicketState.FILLED
    if result.ledger.filled_qty > record.order_qty:
        flags.append("OVERFILL")
    if given.kind is TicketEventKind.FILLED and not complete:
        flags.append("FILLED_REPORT_INCOMPLETE")  # quantities decide: a missing fill is still to come
    return _applied(record, replace(record, **updates), given, fill=result.fill, flags=flags, note=edge.why)


_FILL_ANOMALIES = {
    FillVerdict.CONFLICT: AnomalyCode.FILL_CONFLICT,
    FillVerdict.STALE: AnomalyCode.STALE_FILL_REPORT,
    FillVerdict.MALFORMED: AnomalyCode.MALFORMED_FILL,
    FillVerdict.MIXED_MODE: AnomalyCode.MIXED_FILL_REPORTING,
}


def _restore_pre_cancel(record: TicketRecord, given: TicketInput, edge: Edge) -> TicketStep:
    updates, flags = _oms_event_updates(record, given)
    updates["state"] = record.pre_cancel_state or TicketState.ACCEPTED
    updates["pre_cancel_state"] = None
    return _applied(record, replace(record, **updates), given, flags=flags, note=edge.why)


def _ack_pending_cancel(record: TicketRecord, given: TicketInput, edge: Edge) -> TicketStep:
    updates, flags = _oms_event_updates(record, given)
    if record.pre_cancel_state is TicketState.SUBMITTED:
        updates["pre_cancel_state"] = TicketState.ACCEPTED
    return _applied(record, replace(record, **updates), given, flags=flags, note=edge.why)


def _reject_pending_cancel(record: TicketRecord, given: TicketInput, edge: Edge) -> TicketStep:
    if record.filled_qty > 0:
        return _anomaly(record, given, AnomalyCode.INVALID_TRANSITION, "an order with fills cannot be rejected")
    return _move(record, given, TicketState.REJECTED, edge.why)


def _scale(record: TicketRecord, given: TicketInput, edge: Edge) -> TicketStep:
    assert given.order_qty is not None
    after = replace(record, order_qty=given.order_qty)
    note = f"{edge.why}: {decimal_to_str(record.order_qty)} -> {decimal_to_str(given.order_qty)}"
    return _applied(record, after, given, note=note)


def _release_after_cancel(record: TicketRecord, given: TicketInput, edge: Edge) -> TicketStep:
    if record.is_submitted:
        return TicketStep(StepVerdict.DUPLICATE, record)
    return _anomaly(record, given, AnomalyCode.RELEASED_AFTER_CANCEL, edge.why, send_cancel=True)


def _keep(record: TicketRecord, given: TicketInput, edge: Edge) -> TicketStep:
    updates, flags = _oms_event_updates(record, given)
    after = replace(record, **updates) if updates else record
    return _applied(record, after, given, flags=flags, note=edge.why)


def _duplicate(record: TicketRecord, given: TicketInput, edge: Edge) -> TicketStep:
    return TicketStep(StepVerdict.DUPLICATE, record)


_FILL_RULES = frozenset({Derived.FILL, Derived.FILL_PENDING_CANCEL, Derived.LATE_FILL})

_DERIVED_RULES = {
    Derived.RESTORE_PRE_CANCEL: _restore_pre_cancel,
    Derived.ACK_PENDING_CANCEL: _ack_pending_cancel,
    Derived.REJECT_PENDING_CANCEL: _reject_pending_cancel,
    Derived.SCALE: _scale,
    Derived.RELEASE_AFTER_CANCEL: _release_after_cancel,
    Derived.KEEP: _keep,
    Derived.DUPLICATE: _duplicate,
}
