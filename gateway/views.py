"""JSON bodies of executions, built from decoded `ExecutionSnapshot` records.

Used by the read model (for every state change) and by the create/cancel handlers (for the
snapshot a `CommandResult` carries), so both answer with the same shape: the `Execution` and
`ExecutionSummary` models of `gateway.models`. Plain dicts, no pydantic: this runs for every
state change the gateway consumes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from execution_domain.canonical import decimal_to_str, format_timestamp

_TICKET_FIELDS = {
    "SECURITY_ORDER": ("instrument_id", "side", "quantity", "currency"),
    "FX_SPOT_ORDER": ("pair", "buy_currency", "buy_amount", "sell_currency", "sell_amount_estimated"),
    "CASH_TRANSFER": ("currency", "amount"),
}


def _text(value: Any) -> Any:
    if isinstance(value, Decimal):
        return decimal_to_str(value)
    if isinstance(value, datetime):
        return format_timestamp(value)
    return value


def _opt_dec(value: Decimal | None) -> str | None:
    return None if value is None else decimal_to_str(value)


def _opt_ts(value: datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)


def policy_view(policy: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "time_in_force": policy["time_in_force"],
        "order_type": policy["order_type"],
        "allow_partial_fills": policy["allow_partial_fills"],
        "max_slippage_bps": decimal_to_str(policy["max_slippage_bps"]),
        "dry_run": policy["dry_run"],
        "critical_sells": policy["critical_sells"],
        "partial_funding": policy["partial_funding"],
    }


def _ticket_view(entry: Mapping[str, Any]) -> dict[str, Any]:
    ticket = entry["ticket"]
    kind = ticket["ticket_type"]
    view: dict[str, Any] = {
        "ticket_id": ticket["ticket_id"],
        "ticket_type": kind,
        "intent_id": ticket["intent_id"],
        "order_type": ticket["order_type"],
        "time_in_force": ticket["time_in_force"],
        "dependencies": list(ticket.get("dependencies") or ()),
    }
    for name in _TICKET_FIELDS[kind]:
        view[name] = _text(ticket[name])
    if kind == "SECURITY_ORDER":
        view["constraints"] = {"max_slippage_bps": decimal_to_str(ticket["constraints"]["max_slippage_bps"])}
    view.update(
        status=entry["status"],
        released=entry["released"],
        order_quantity=decimal_to_str(entry["order_quantity"]),
        filled_qty=decimal_to_str(entry["filled_qty"]),
        avg_price=_opt_dec(entry.get("avg_price")),
        overfill_qty=decimal_to_str(entry["overfill_qty"]),
        external_order_id=entry.get("external_order_id"),
        last_event_at=_opt_ts(entry.get("last_event_at")),
        reason=entry.get("reason"),
    )
    return view


def _event_view(event: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "seq": event["seq"],
        "kind": event["kind"],
        "ticket_id": event.get("ticket_id"),
        "event_type": event.get("event_type"),
        "event_id": event.get("event_id"),
        "from_state": event.get("from_state"),
        "to_state": event.get("to_state"),
        "reason": event.get("reason"),
        "occurred_at": format_timestamp(event["occurred_at"]),
    }


def lineage_view(snapshot: Mapping[str, Any]) -> dict[str, str]:
    return {"request_hash": snapshot["request_hash"], "proposal_version_hash": snapshot["proposal_version_hash"]}


def _header_view(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """The fields `Execution` and `ExecutionSummary` share (`ExecutionHeader`)."""
    return {
        "execution_id": snapshot["execution_id"],
        "proposal_id": snapshot["proposal_id"],
        "version_no": snapshot["version_no"],
        "portfolio_id": snapshot["portfolio_id"],
        "status": snapshot["status"],
        "dry_run": snapshot["policy"]["dry_run"],
        "created_at": format_timestamp(snapshot["created_at"]),
        "updated_at": format_timestamp(snapshot["updated_at"]),
    }


def execution_view(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """The `Execution` body of a decoded ExecutionSnapshot record."""
    return {
        **_header_view(snapshot),
        "execution_policy": policy_view(snapshot["policy"]),
        "actor": {"requested_by": snapshot["actor"]["requested_by"], "channel": snapshot["actor"]["channel"]},
        "lineage": lineage_view(snapshot),
        "tickets": [_ticket_view(entry) for entry in snapshot["tickets"]],
        "events": [_event_view(event) for event in snapshot["events"]],
        "anomaly_count": snapshot["anomaly_count"],
    }


def summary_view(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """The `ExecutionSummary` (list item) of a decoded ExecutionSnapshot record."""
    return {
        **_header_view(snapshot),
        "ticket_count": len(snapshot["tickets"]),
        "lineage": lineage_view(snapshot),
    }
