"""Translation between Avro wire records (dicts as fastavro gives and takes them) and domain values.

Knows the field names of `schemas/*.avsc` and the domain's types, and nothing of Kafka. Decoded
records carry `decimal.Decimal` for decimal strings and aware UTC `datetime` for timestamps;
enums are plain strings. Records built here are ready for `wire.serde.encode`.

Union values that are records (the ticket inside a snapshot or an instruction, the execution
transition) are given in fastavro's tuple notation `(full name, record)`: fastavro then writes
that branch directly instead of validating the value against every branch first. Such values
are for encoding; decoding gives back plain dicts.

Decimals leave the domain normalised ("1500.00" -> 1500, no exponent on the wire), as the
glossary says everything the service emits is.

On the hot path (order events in, state changes out) nothing builds a pydantic model or
deep-copies: records are assembled field by field from the frozen domain values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Context, Decimal
from typing import Any, Final, Literal, TypeAlias

from execution_domain import (
    Actor,
    CancelRequest,
    EventDetails,
    Execution,
    ExecutionPolicy,
    LogEntry,
    OrderEvent,
    OrderEventType,
    Outcome,
    ProposalArtifact,
    RequestOrigin,
    Ticket,
    TicketState,
    parse_artifact,
)
from execution_domain.canonical import decimal_to_str, format_timestamp
from execution_domain.events import NO_DETAILS
from execution_domain.policy import OrderType, TimeInForce
from execution_domain.proposal import Side
from execution_domain.tickets import CashTransferTicket, FxSpotOrderTicket, SecurityOrderTicket
from wire.errors import RecordError

__all__ = [
    "CreateCommand",
    "Record",
    "actor_from_record",
    "actor_to_record",
    "artifact_from_record",
    "artifact_to_record",
    "cancel_request_from_record",
    "lifecycle_rows",
    "create_command_from_record",
    "order_event_from_record",
    "order_event_to_record",
    "policy_from_record",
    "policy_to_record",
    "snapshot_record",
    "state_change_record",
    "ticket_from_record",
    "ticket_instruction_record",
    "ticket_to_record",
    "ticket_union_value",
]

Record: TypeAlias = dict[str, Any]
InstructionType: TypeAlias = Literal["SUBMIT", "CANCEL"]
CauseKind: TypeAlias = Literal["COMMAND", "ORDER_EVENT"]

NAMESPACE: Final = "com.wealth.execution.v1"
# fastavro's tuple notation matches the branch's *full* name; the short name is refused.
SECURITY_ORDER_TICKET: Final = f"{NAMESPACE}.SecurityOrderTicket"
FX_SPOT_ORDER_TICKET: Final = f"{NAMESPACE}.FxSpotOrderTicket"
CASH_TRANSFER_TICKET: Final = f"{NAMESPACE}.CashTransferTicket"
EXECUTION_TRANSITION: Final = f"{NAMESPACE}.ExecutionTransition"

CREATE_EXECUTION: Final = "CREATE_EXECUTION"
CANCEL_EXECUTION: Final = "CANCEL_EXECUTION"


# --- decimals and timestamps -------------------------------------------------------------------

# Wide enough that normalising never rounds a realistic quantity, price or average (the domain's
# exact arithmetic uses 60 digits, its average price 28).
_NORMALISE = Context(prec=100)
_ZERO = Decimal(0)


def _dec(value: Decimal) -> Decimal:
    """The value with trailing zeros dropped (no negative zero); the wire writes it in plain notation."""
    normal = _NORMALISE.normalize(value)
    return normal if normal else _ZERO  # -0 and 0E-5 become 0


def _opt_dec(value: Decimal | None) -> Decimal | None:
    return None if value is None else _dec(value)


def _to_primitive(value: Any) -> Any:
    """Decimals and timestamps of a decoded record as the domain's JSON text forms, for pydantic.

    Anything else passes through unchanged, so a value of the wrong type (a naive datetime, a
    non-finite decimal) reaches the domain's validation and comes back as a ValidationProblem
    instead of escaping as a TypeError here.
    """
    if isinstance(value, Mapping):
        return {key: _to_primitive(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_primitive(item) for item in value]
    if isinstance(value, Decimal):
        return decimal_to_str(value) if value.is_finite() else value
    if isinstance(value, datetime):
        return value if value.tzinfo is None else format_timestamp(value)
    return value


# --- proposal artifact (ApprovedProposal) --------------------------------------------------------


def artifact_from_record(record: Mapping[str, Any]) -> ProposalArtifact:
    """The validated artifact of an ApprovedProposal record; raises ArtifactInvalid with every problem.

    Goes through the primitive (JSON) form and `parse_artifact`, so validation, and the
    proposal_version_hash check in particular, are exactly what an upstream publisher sealed
    with `seal_artifact`: the hash is over normalised decimal text and `...Z` timestamps.
    """
    return parse_artifact(_to_primitive(record))


def artifact_to_record(artifact: ProposalArtifact) -> Record:
    """The ApprovedProposal record of an artifact (intents as plain dicts: not a hot path)."""
    gate = artifact.gate_decision
    flows = artifact.trades_and_funding
    return {
        "proposal_id": artifact.proposal_id,
        "version_no": artifact.version_no,
        "proposal_version_hash": artifact.proposal_version_hash,
        "portfolio_id": artifact.portfolio_id,
        "base_currency": artifact.base_currency,
        "created_at": artifact.created_at,
        "gate_decision": {
            "decision": gate.decision.value,
            "reasons": [{"code": reason.code, "message": reason.message} for reason in gate.reasons],
            "decided_at": gate.decided_at,
        },
        "trades_and_funding": {
            "funding_claimed": flows.funding_claimed,
            "intents": [_intent_to_record(intent) for intent in flows.intents],
        },
    }


def _intent_to_record(intent: Any) -> Record:
    common = {
        "intent_id": intent.intent_id,
        "intent_type": intent.intent_type.value,
        "dependencies": list(intent.dependencies),
    }
    kind = common["intent_type"]
    if kind == "SECURITY_TRADE":
        return {
            **common,
            "instrument_id": intent.instrument_id,
            "side": intent.side.value,
            "quantity": _dec(intent.quantity),
            "currency": intent.currency,
            "indicative_price": _dec(intent.indicative_price),
        }
    if kind == "FX_SPOT":
        return {
            **common,
            "pair": intent.pair,
            "buy_currency": intent.buy_currency,
            "buy_amount": _dec(intent.buy_amount),
            "sell_currency": intent.sell_currency,
            "sell_amount_estimated": _dec(intent.sell_amount_estimated),
        }
    return {**common, "currency": intent.currency, "amount": _dec(intent.amount), "description": intent.description}


# --- policy and actor ------------------------------------------------------------------------------


def policy_from_record(record: Mapping[str, Any]) -> ExecutionPolicy:
    """The policy of an ExecutionPolicy record; pydantic.ValidationError (a ValueError) if invalid,
    e.g. a negative max_slippage_bps, which the schema cannot express."""
    return ExecutionPolicy.model_validate(record)


def policy_to_record(policy: ExecutionPolicy) -> Record:
    return {
        "time_in_force": policy.time_in_force._value_,
        "order_type": policy.order_type._value_,
        "allow_partial_fills": policy.allow_partial_fills,
        "max_slippage_bps": _dec(policy.max_slippage_bps),
        "dry_run": policy.dry_run,
        "critical_sells": policy.critical_sells._value_,
        "partial_funding": policy.partial_funding._value_,
        "on_critical_rejection": policy.on_critical_rejection._value_,
    }


def actor_from_record(record: Mapping[str, Any]) -> Actor:
    return Actor(requested_by=bounded_id(record["requested_by"], "actor.requested_by"),
                 channel=bounded_id(record["channel"], "actor.channel"),
                 claimed_requested_by=bounded_text(record.get("claimed_requested_by")))


def actor_to_record(actor: Actor) -> Record:
    return {"requested_by": actor.requested_by, "channel": actor.channel,
            "claimed_requested_by": actor.claimed_requested_by}


# --- order events (OrderEvent) ----------------------------------------------------------------------

_DETAIL_KEYS: Final = ("fill_id", "last_qty", "last_price", "filled_qty", "avg_price", "reason")


# Bounds on what comes from outside (an OMS, an upstream producer): an id is identity, so one over the
# limit makes the record invalid (dead-lettered, named); free text is informative, so it is cut, saying so.
MAX_ID_LENGTH: Final = 256
MAX_TEXT_LENGTH: Final = 1_000


def bounded_id(value: str, name: str) -> str:
    """An id from outside; RecordError naming it if it is longer than MAX_ID_LENGTH."""
    if len(value) > MAX_ID_LENGTH:
        raise RecordError(f"{name} is {len(value):,} characters long; at most {MAX_ID_LENGTH}")
    return value


def bounded_optional_id(value: str | None, name: str) -> str | None:
    return None if value is None else bounded_id(value, name)


def bounded_text(value: str | None) -> str | None:
    """Free text from outside, cut to MAX_TEXT_LENGTH characters (the cut is said)."""
    if value is None or len(value) <= MAX_TEXT_LENGTH:
        return value
    note = f" ... (cut: {len(value):,} characters)"
    return value[: MAX_TEXT_LENGTH - len(note)] + note


def order_event_from_record(record: Mapping[str, Any]) -> OrderEvent:
    """The domain OrderEvent of an OrderEvent record (hot path: plain dataclasses only).

    Decimals are kept as decoded (the domain compares them by value). A record whose details
    are all null (or absent) shares the domain's empty-details value. Ids over MAX_ID_LENGTH make
    it invalid (RecordError); a reason over MAX_TEXT_LENGTH is cut.
    """
    occurred_at = record["occurred_at"]
    if occurred_at.tzinfo is None:  # the decoder never yields one; a hand-built record might
        raise RecordError("OrderEvent.occurred_at must be timezone-aware")
    details = record.get("details")
    return OrderEvent(
        event_id=bounded_id(record["event_id"], "event_id"),
        execution_id=bounded_id(record["execution_id"], "execution_id"),
        ticket_id=bounded_id(record["ticket_id"], "ticket_id"),
        source=bounded_id(record["source"], "source"),
        event_type=OrderEventType(record["event_type"]),
        external_order_id=bounded_optional_id(record.get("external_order_id"), "external_order_id"),
        occurred_at=occurred_at,
        details=_details_from_record(details) if details else NO_DETAILS,
    )


def _details_from_record(details: Mapping[str, Any]) -> EventDetails:
    fill_id = bounded_optional_id(details.get("fill_id"), "details.fill_id")
    last_qty = details.get("last_qty")
    last_price = details.get("last_price")
    filled_qty = details.get("filled_qty")
    avg_price = details.get("avg_price")
    reason = bounded_text(details.get("reason"))
    if fill_id is None and last_qty is None and last_price is None and filled_qty is None and avg_price is None:
        if reason is None:
            return NO_DETAILS
    return EventDetails(fill_id, last_qty, last_price, filled_qty, avg_price, reason)


def order_event_to_record(event: OrderEvent) -> Record:
    details = event.details
    return {
        "event_id": event.event_id,
        "execution_id": event.execution_id,
        "ticket_id": event.ticket_id,
        "source": event.source,
        "event_type": event.event_type._value_,
        "external_order_id": event.external_order_id,
        "occurred_at": event.occurred_at,
        "details": {
            "fill_id": details.fill_id,
            "last_qty": _opt_dec(details.last_qty),
            "last_price": _opt_dec(details.last_price),
            "filled_qty": _opt_dec(details.filled_qty),
            "avg_price": _opt_dec(details.avg_price),
            "reason": details.reason,
        },
    }


# --- tickets ---------------------------------------------------------------------------------------------


def ticket_to_record(ticket: Ticket) -> Record:
    """The SecurityOrderTicket / FxSpotOrderTicket / CashTransferTicket record of a ticket."""
    if type(ticket) is SecurityOrderTicket:
        return {
            "ticket_id": ticket.ticket_id,
            "ticket_type": "SECURITY_ORDER",
            "intent_id": ticket.intent_id,
            "order_type": ticket.order_type._value_,
            "time_in_force": ticket.time_in_force._value_,
            "dependencies": list(ticket.dependencies),
            "instrument_id": ticket.instrument_id,
            "side": ticket.side._value_,
            "quantity": _dec(ticket.quantity),
            "currency": ticket.currency,
            "constraints": {"max_slippage_bps": _dec(ticket.max_slippage_bps)},
        }
    if type(ticket) is FxSpotOrderTicket:
        return {
            "ticket_id": ticket.ticket_id,
            "ticket_type": "FX_SPOT_ORDER",
            "intent_id": ticket.intent_id,
            "order_type": ticket.order_type._value_,
            "time_in_force": ticket.time_in_force._value_,
            "dependencies": list(ticket.dependencies),
            "pair": ticket.pair,
            "buy_currency": ticket.buy_currency,
            "buy_amount": _dec(ticket.buy_amount),
            "sell_currency": ticket.sell_currency,
            "sell_amount_estimated": _dec(ticket.sell_amount_estimated),
        }
    if type(ticket) is CashTransferTicket:
        return {
            "ticket_id": ticket.ticket_id,
            "ticket_type": "CASH_TRANSFER",
            "intent_id": ticket.intent_id,
            "order_type": ticket.order_type._value_,
            "time_in_force": ticket.time_in_force._value_,
            "dependencies": list(ticket.dependencies),
            "currency": ticket.currency,
            "amount": _dec(ticket.amount),
        }
    raise TypeError(f"not a ticket: {type(ticket).__name__}")


_UNION_NAMES: Final[Mapping[type, str]] = {
    SecurityOrderTicket: SECURITY_ORDER_TICKET,
    FxSpotOrderTicket: FX_SPOT_ORDER_TICKET,
    CashTransferTicket: CASH_TRANSFER_TICKET,
}


def ticket_union_value(ticket: Ticket) -> tuple[str, Record]:
    """The ticket for a ticket-union field, branch named: fastavro skips trying every branch."""
    return _UNION_NAMES[type(ticket)], ticket_to_record(ticket)


def ticket_from_record(record: Mapping[str, Any]) -> Ticket:
    """The domain ticket of a decoded ticket record (for OMS adapters and tests), by `ticket_type`."""
    kind = record["ticket_type"]
    common = {
        "ticket_id": record["ticket_id"],
        "intent_id": record["intent_id"],
        "order_type": OrderType(record["order_type"]),
        "time_in_force": TimeInForce(record["time_in_force"]),
        "dependencies": tuple(record.get("dependencies", ())),
    }
    if kind == "SECURITY_ORDER":
        return SecurityOrderTicket(
            **common,
            instrument_id=record["instrument_id"],
            side=Side(record["side"]),
            quantity=record["quantity"],
            currency=record["currency"],
            max_slippage_bps=record["constraints"]["max_slippage_bps"],
        )
    if kind == "FX_SPOT_ORDER":
        return FxSpotOrderTicket(
            **common,
            pair=record["pair"],
            buy_currency=record["buy_currency"],
            buy_amount=record["buy_amount"],
            sell_currency=record["sell_currency"],
            sell_amount_estimated=record["sell_amount_estimated"],
        )
    if kind == "CASH_TRANSFER":
        return CashTransferTicket(**common, currency=record["currency"], amount=record["amount"])
    raise RecordError(f"unknown ticket_type {kind!r}")


# --- snapshots, instructions and state changes ---------------------------------------------------------


def lifecycle_rows(entry: LogEntry, first_seq: int) -> tuple[Record, ...]:
    """The LifecycleEvent records of one log entry, numbered from `first_seq`; an entry that applied
    an order event names the event's source on each of its rows."""
    source = entry.input.source if isinstance(entry.input, OrderEvent) else None
    return tuple(
        {
            "seq": seq,
            "kind": row.kind,
            "ticket_id": row.ticket_id,
            "event_type": None if row.event_type is None else row.event_type._value_,
            "event_id": row.event_id,
            "from_state": row.from_state,
            "to_state": row.to_state,
            "reason": row.reason,
            "occurred_at": row.occurred_at,
            "source": source,
        }
        for seq, row in enumerate(entry.rows(), first_seq)
    )


SnapshotContent: TypeAlias = Literal["FULL", "DELTA", "SUMMARY"]


def snapshot_record(
    execution: Execution,
    *,
    content: SnapshotContent = "SUMMARY",
    tickets: Sequence[str] | None = None,
    events: Sequence[Record] = (),
) -> Record:
    """An ExecutionSnapshot record of `execution` (its head after the last change).

    - ``SUMMARY`` (the execution-snapshots table, command results): every ticket, no lifecycle rows;
    - ``DELTA`` (inside a state change): only ``tickets`` (the ids the change touched, in ticket
      order) and ``events`` (the change's own rows, `lifecycle_rows`).
    - ``updated_at`` is the time of the last log entry (the input's own time: an order event's
      occurred_at or a command's issued_at; the domain reads no clock).
    - ``event_count`` is the number of lifecycle rows of the whole log (rows are numbered 1..n
      without gaps over the log; an entry may give several rows, so a row's seq is not the entry's);
      ``last_sequence`` the seq of the last log entry, i.e. of the latest state change.
    - ``anomaly_count`` counts the domain's anomalies; overfills are flags, not anomalies, and
      show as ``overfill_qty``.
    """
    definition = execution.definition
    proposal = definition.proposal
    origin = definition.origin
    if origin.idempotency_key is None:
        # Required by the schema; every create command carries one. Never invent it.
        raise ValueError(f"execution {definition.execution_id} has no idempotency key to publish")
    if content == "SUMMARY":
        shown: Sequence[Ticket] = definition.tickets
    else:
        by_id = definition.tickets_by_id
        shown = [by_id[ticket_id] for ticket_id in tickets or ()]
    records = execution.records
    rows = []
    for ticket in shown:
        record = records[ticket.ticket_id]
        rows.append(
            {
                "ticket": ticket_union_value(ticket),  # as generated; order_quantity carries any scaling
                "status": record.state._value_,
                "released": record.released_for_submission,
                "order_quantity": _dec(record.order_qty),
                "filled_qty": _dec(record.filled_qty),
                "avg_price": _opt_dec(record.avg_price),  # None before the first fill
                "overfill_qty": _dec(record.overfill_qty),
                "external_order_id": record.external_order_id,
                "last_event_at": record.last_event_at,
                "reason": record.reason,
            }
        )
    open_tickets = execution.open_ticket_count
    return {
        "execution_id": definition.execution_id,
        "proposal_id": proposal.proposal_id,
        "version_no": proposal.version_no,
        "proposal_version_hash": proposal.proposal_version_hash,
        "portfolio_id": proposal.portfolio_id,
        "status": execution.state._value_,
        "created_at": definition.created_at,
        "updated_at": execution.updated_at or definition.created_at,
        "idempotency_key": origin.idempotency_key,
        "request_hash": definition.request_hash,
        "policy": policy_to_record(definition.policy),
        "actor": actor_to_record(origin.actor),
        "tickets": rows,
        "events": list(events) if content == "DELTA" else [],
        "anomaly_count": execution.anomaly_count,
        "content": content,
        "ticket_count": len(definition.tickets),
        "open_ticket_count": open_tickets,
        "is_complete": open_tickets == 0,
        "event_count": execution.row_count,
        "last_sequence": execution.seq,
    }


def ticket_instruction_record(
    *,
    instruction_id: str,
    instruction: InstructionType,
    execution: Execution,
    ticket: Ticket,
    correlation_id: str | None,
    issued_at: datetime,
) -> Record:
    """A TicketInstruction record. For SUBMIT pass the effective ticket (``Outcome.tickets_to_submit``
    or ``execution.effective_ticket``): scaled down when its funding was partial."""
    if ticket.ticket_id not in execution.records:
        raise ValueError(f"ticket {ticket.ticket_id} is not part of execution {execution.execution_id}")
    proposal = execution.definition.proposal
    return {
        "instruction_id": instruction_id,
        "instruction": instruction,
        "execution_id": execution.execution_id,
        "proposal_id": proposal.proposal_id,
        "version_no": proposal.version_no,
        "correlation_id": correlation_id,
        "issued_at": issued_at,
        "ticket": ticket_union_value(ticket),
    }


def release_request_record(*, proposal_id: str, version_no: int, execution_id: str, cause_id: str,
                           correlation_id: str | None, issued_at: datetime, ended_state: str) -> Record:
    """The AdmissionRequest that gives a proposal version back once its execution has ended
    (`ended_state`); its id is unique per execution and cause, so a redelivered cause repeats it."""
    return {
        "request_id": f"{execution_id}/release/{cause_id}", "kind": "RELEASE",
        "proposal_id": proposal_id, "version_no": version_no, "execution_id": execution_id,
        "correlation_id": correlation_id or "", "issued_at": issued_at, "reserve_version": False,
        "artifact": None, "ended_state": ended_state,
    }


def state_change_record(
    *,
    change_id: str,
    sequence: int,
    occurred_at: datetime,
    correlation_id: str | None,
    cause_kind: CauseKind,
    cause_id: str,
    outcome: Outcome,
) -> Record:
    """The ExecutionStateChange record of one log entry (``outcome.entry``): what changed, never the rest.

    - ``execution`` is a DELTA snapshot: the header and counters after the change, the current
      state of the tickets the change touched (``outcome.changed_tickets``) and the change's own
      lifecycle rows, numbered on from the rows before it. Its size depends on what the input
      touched, not on the execution's history.
    - ``execution_transition``: from the state before (None when the change created the
      execution) to the state after; None if the state did not change.
    - ``ticket_transitions``: every ticket change whose state moved (fills within a state, keeps
      and scalings show in the tickets, not here); a creation gives None -> PENDING_SUBMIT for
      every ticket.
    """
    entry = outcome.entry
    if entry is None:
        raise ValueError("a duplicate (no log entry) has no state change")
    execution = outcome.execution
    before: str | None = None if entry.state_before is None else entry.state_before._value_
    after = entry.state_after._value_
    transitions: list[Record] = []
    if entry.state_before is None:
        pending = TicketState.PENDING_SUBMIT._value_
        transitions.extend(
            {"ticket_id": ticket.ticket_id, "from_state": None, "to_state": pending}
            for ticket in execution.definition.tickets
        )
    for change in entry.changes:
        if change.from_state is not change.to_state:
            transitions.append(
                {"ticket_id": change.ticket_id, "from_state": change.from_state._value_, "to_state": change.to_state._value_}
            )
    return {
        "change_id": change_id,
        "execution_id": execution.execution_id,
        "sequence": sequence,
        "occurred_at": occurred_at,
        "correlation_id": correlation_id,
        "cause": {"kind": cause_kind, "id": cause_id},
        "execution_transition": None
        if before == after
        else (EXECUTION_TRANSITION, {"from_state": before, "to_state": after}),
        "ticket_transitions": transitions,
        "execution": snapshot_record(
            execution, content="DELTA", tickets=outcome.changed_tickets,
            events=lifecycle_rows(entry, outcome.first_row_seq),
        ),
    }


# --- commands (ExecutionCommand) -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreateCommand:
    """A CREATE_EXECUTION command, in domain terms where the domain has them."""

    command_id: str
    execution_id: str
    issued_at: datetime
    proposal_id: str
    version_no: int
    policy: ExecutionPolicy
    origin: RequestOrigin  # actor, idempotency_key, correlation_id
    request_hash: str  # as the gateway computed it (compare with execution_domain.request_hash)
    artifact_record: Record | None  # the inline ApprovedProposal record; None to use the stored version


def _payload(command: Mapping[str, Any], expected: str) -> Mapping[str, Any]:
    # The encoder picks the payload branch from its fields, not from command_type: check both agree.
    kind = command["command_type"]
    if kind != expected:
        raise RecordError(f"command {command.get('command_id')!r} is {kind}, not {expected}")
    payload = command["payload"]
    marker = "idempotency_key" in payload
    if marker != (expected == CREATE_EXECUTION):
        raise RecordError(f"command {command.get('command_id')!r}: {kind} with a payload of the other kind")
    checked: Mapping[str, Any] = payload
    return checked


def create_command_from_record(command: Mapping[str, Any]) -> CreateCommand:
    """Raises ValueError for another command type, and pydantic.ValidationError (a ValueError) for
    an invalid policy. The inline artifact is returned as a record: admission decides whether
    it is used, and `artifact_from_record` validates it."""
    payload = _payload(command, CREATE_EXECUTION)
    return CreateCommand(
        command_id=command["command_id"],
        execution_id=command["execution_id"],
        issued_at=command["issued_at"],
        proposal_id=payload["proposal_id"],
        version_no=payload["version_no"],
        policy=policy_from_record(payload["execution_policy"]),
        origin=RequestOrigin(
            actor=actor_from_record(payload["actor"]),
            idempotency_key=payload["idempotency_key"],
            correlation_id=command["correlation_id"],
        ),
        request_hash=payload["request_hash"],
        artifact_record=payload.get("artifact"),
    )


def cancel_request_from_record(command: Mapping[str, Any]) -> CancelRequest:
    """The domain CancelRequest of a CANCEL_EXECUTION command (deduplicated by its command_id)."""
    payload = _payload(command, CANCEL_EXECUTION)
    return CancelRequest(
        command_id=command["command_id"],
        requested_at=command["issued_at"],
        actor=actor_from_record(payload["actor"]),
        reason=bounded_text(payload.get("reason")),
    )
