"""Readable one-line descriptions of execution state changes (shared with the demo)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from execution_domain.ticket_state import TERMINAL_TICKET_STATES


def short_ticket(snapshot: dict[str, Any], ticket_id: str) -> str:
    """e.g. 'SELL SG_BOND_2030 120' or 'FX USD/SGD 1500' for a ticket of the snapshot."""
    for entry in snapshot["tickets"]:
        ticket = entry["ticket"]
        if ticket["ticket_id"] == ticket_id:
            return describe_ticket(ticket, entry["order_quantity"])
    return ticket_id


def describe_ticket(ticket: dict[str, Any], quantity: Decimal | None = None) -> str:
    kind = ticket["ticket_type"]
    if kind == "SECURITY_ORDER":
        return f"{ticket['side']} {ticket['instrument_id']} {quantity if quantity is not None else ticket['quantity']}"
    if kind == "FX_SPOT_ORDER":
        amount = quantity if quantity is not None else ticket["buy_amount"]
        return f"FX buy {amount} {ticket['buy_currency']} / sell {ticket['sell_currency']}"
    return f"CASH {ticket['amount']} {ticket['currency']}"


def change_parts(change: dict[str, Any]) -> tuple[str, list[str], str]:
    """(time, what changed, cause) of a state change, e.g. ("08:36:48.786", ["BUY ...: A -> B"], "order_event E7")."""
    snapshot = change["execution"]
    parts = []
    transition = change.get("execution_transition")
    if transition:
        parts.append(f"execution {transition['from_state'] or '-'} -> {transition['to_state']}")
    for ticket_change in change["ticket_transitions"]:
        if ticket_change["from_state"] is None:
            continue  # creation: every ticket starts PENDING_SUBMIT
        parts.append(f"{short_ticket(snapshot, ticket_change['ticket_id'])}: "
                     f"{ticket_change['from_state']} -> {ticket_change['to_state']}")
    if not parts:  # applied without a state move: a further fill, a repeated report, an anomaly
        last = snapshot["events"][-1] if snapshot["events"] else None
        parts.append(_describe_row(snapshot, last) if last else "recorded (no state change)")
    cause = change["cause"]
    return f"{change['occurred_at']:%H:%M:%S.%f}"[:-3], parts, f"{cause['kind'].lower()} {cause['id']}"


def describe_change(change: dict[str, Any]) -> str:
    at, parts, cause = change_parts(change)
    return f"{at}  {change['execution_id']} #{change['sequence']:<3} {'; '.join(parts)}  [{cause}]"


def _describe_row(snapshot: dict[str, Any], row: dict[str, Any]) -> str:
    subject = short_ticket(snapshot, row["ticket_id"]) if row["ticket_id"] else "execution"
    what = row["event_type"] or row["kind"]
    filled = ""
    for entry in snapshot["tickets"]:
        if entry["ticket"]["ticket_id"] == row["ticket_id"]:
            filled = f", filled {entry['filled_qty']} of {entry['order_quantity']}"
    reason = f" ({row['reason']})" if row["reason"] else ""
    return f"{subject}: {what} recorded{filled}{reason}"


TERMINAL_TICKET_STATUSES = frozenset(state.value for state in TERMINAL_TICKET_STATES)


def describe_final(snapshot: dict[str, Any]) -> list[str]:
    """The end state of an execution: one line per ticket with filled quantity and average price."""
    lines = [f"{snapshot['execution_id']} {snapshot['status']} (proposal {snapshot['proposal_id']} "
             f"v{snapshot['version_no']})"]
    for entry in snapshot["tickets"]:
        price = "-" if entry["avg_price"] is None else f"{entry['avg_price']:.6f}".rstrip("0").rstrip(".")
        lines.append(f"    {describe_ticket(entry['ticket'], entry['order_quantity']):<45} {entry['status']:<14} "
                     f"filled {entry['filled_qty']} @ {price}")
    if snapshot.get("is_complete") is False:  # absent in records written before the counters existed
        working = [entry for entry in snapshot["tickets"] if entry["status"] not in TERMINAL_TICKET_STATUSES]
        described = ", ".join(f"{entry['ticket']['ticket_id']} {entry['status']}" for entry in working)
        lines.append(f"    not complete: {snapshot.get('open_ticket_count', len(working))} ticket(s) still working"
                     + (f" ({described})" if described else "") + "; their reports will still be folded")
    return lines
