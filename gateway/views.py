"""JSON bodies of executions, built from decoded `ExecutionSnapshot` records.

Used by the read model (per state change and table row: the header, each ticket and each
lifecycle row are rendered once, when they arrive, and stored rendered) and by the create and
cancel handlers (for the SUMMARY snapshot a `CommandResult` carries), so both answer with the
same shape: the `Execution` and `ExecutionSummary` models of `gateway.models`. Plain dicts, no
pydantic: this runs for every record the gateway consumes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from execution_domain.canonical import decimal_to_str, format_timestamp

# The lifecycle rows a GET of an execution carries (the most recent); the rest are paged by
# GET /rebalance/executions/{id}/events.
RECENT_EVENTS = 50
TERMINAL_TICKET_STATES = frozenset({"FILLED", "CANCELLED", "REJECTED"})

_TICKET_FIELDS = {
    "SECURITY_ORDER": ("instrument_id", "side", "quantity", "currency"),
    "FX_SPOT_ORDER": ("pair", "buy_currency", "buy_amount", "sell_currency", "sell_amount_estimated"),
    "CASH_TRANSFER": ("currency", "amount"),
}
# The list item (`ExecutionSummary`): these fields of the header view.
SUMMARY_FIELDS = ("execution_id", "proposal_id", "version_no", "portfolio_id", "status", "dry_run", "created_at",
                  "updated_at", "ticket_count", "open_ticket_count", "is_complete", "lineage")


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


def execution_path(execution_id: str) -> str:
    return f"/rebalance/executions/{execution_id}"


def events_path(execution_id: str) -> str:
    return f"/rebalance/executions/{execution_id}/events"


def policy_view(policy: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "time_in_force": policy["time_in_force"],
        "order_type": policy["order_type"],
        "allow_partial_fills": policy["allow_partial_fills"],
        "max_slippage_bps": decimal_to_str(policy["max_slippage_bps"]),
        "dry_run": policy["dry_run"],
        "critical_sells": policy["critical_sells"],
        "partial_funding": policy["partial_funding"],
        "on_critical_rejection": policy.get("on_critical_rejection") or "CANCEL_REMAINING",
    }


def ticket_view(entry: Mapping[str, Any]) -> dict[str, Any]:
    """One `ExecutionTicket` of a snapshot."""
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


def event_view(event: Mapping[str, Any]) -> dict[str, Any]:
    """One `LifecycleEvent` row."""
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
        "source": event.get("source"),  # absent in rows written before ExecutionSnapshot v2
    }


def lineage_view(snapshot: Mapping[str, Any]) -> dict[str, str]:
    return {"request_hash": snapshot["request_hash"], "proposal_version_hash": snapshot["proposal_version_hash"]}


def counters(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """ticket_count, open_ticket_count, is_complete and event_count of a snapshot. Records from
    before v2 (FULL, without counters) carry every ticket and the whole log: counted from them."""
    tickets = snapshot["tickets"]
    ticket_count = snapshot.get("ticket_count")
    open_count = snapshot.get("open_ticket_count")
    event_count = snapshot.get("event_count")
    if ticket_count is None:
        ticket_count = len(tickets)
    if open_count is None:
        open_count = sum(1 for ticket in tickets if ticket["status"] not in TERMINAL_TICKET_STATES)
    complete = snapshot.get("is_complete")
    if event_count is None:
        event_count = max((row["seq"] for row in snapshot["events"]), default=0)
    return {
        "ticket_count": ticket_count,
        "open_ticket_count": open_count,
        "is_complete": open_count == 0 if complete is None else complete,
        "event_count": event_count,
    }


def header_view(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """Everything of the `Execution` body but its tickets, events and links."""
    policy = snapshot["policy"]
    return {
        "execution_id": snapshot["execution_id"],
        "proposal_id": snapshot["proposal_id"],
        "version_no": snapshot["version_no"],
        "portfolio_id": snapshot["portfolio_id"],
        "status": snapshot["status"],
        "dry_run": policy["dry_run"],
        "created_at": format_timestamp(snapshot["created_at"]),
        "updated_at": format_timestamp(snapshot["updated_at"]),
        **counters(snapshot),
        "anomaly_count": snapshot["anomaly_count"],
        "execution_policy": policy_view(policy),
        "actor": {"requested_by": snapshot["actor"]["requested_by"], "channel": snapshot["actor"]["channel"]},
        "lineage": lineage_view(snapshot),
    }


def summary_view(header: Mapping[str, Any]) -> dict[str, Any]:
    """The `ExecutionSummary` (list item) of a header view."""
    return {name: header[name] for name in SUMMARY_FIELDS}


def links(execution_id: str) -> dict[str, str]:
    return {"self": execution_path(execution_id), "events": events_path(execution_id)}


def execution_body(header: Mapping[str, Any], tickets: Iterable[Any], events: Iterable[Any]) -> dict[str, Any]:
    """The `Execution` body: the header view, its tickets and (the most recent) lifecycle rows,
    rendered (dicts) or pre-rendered (`orjson.Fragment`)."""
    return {**header, "tickets": list(tickets), "events": list(events), "links": links(header["execution_id"])}


def execution_view(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """The `Execution` body of one decoded snapshot (a command result's SUMMARY: no rows)."""
    events = sorted(snapshot["events"], key=lambda row: row["seq"])[-RECENT_EVENTS:]
    return execution_body(header_view(snapshot), (ticket_view(t) for t in snapshot["tickets"]),
                          (event_view(e) for e in events))
