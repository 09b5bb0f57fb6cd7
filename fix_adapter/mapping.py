"""Ticket -> FIX 4.4 order fields, and the FIX code tables the reports are read with. Pure.

The field mapping table is in docs/fix.md. ClOrdID is the ticket's `ticket_id` as the
instruction carries it: the deterministic id is the counterparty's dedup key (RFC 6.2, 8.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from execution_domain.canonical import decimal_to_str
from execution_domain.policy import OrderType, TimeInForce
from execution_domain.proposal import Side
from execution_domain.tickets import CashTransferTicket, FxSpotOrderTicket, SecurityOrderTicket, Ticket
from fix_adapter.codec import Fields, Tag, utc_timestamp

SIDE = {Side.BUY: "1", Side.SELL: "2"}
ORD_TYPE = {OrderType.MARKET: "1", OrderType.LIMIT: "2"}
TIME_IN_FORCE = {TimeInForce.DAY: "0", TimeInForce.GTC: "1", TimeInForce.IOC: "3", TimeInForce.FOK: "4"}
PRODUCT_CURRENCY = "4"  # Product (460) = CURRENCY: an FX order
SECURITY_ID_SOURCE_EXCHANGE_SYMBOL = "8"

# ExecType (150): FIX 4.4 values, and the FIX 4.2 fill values (1 partial fill, 2 fill) some engines still send.
EXEC_NEW = "0"
EXEC_PARTIAL_FILL_42 = "1"
EXEC_FILL_42 = "2"
EXEC_DONE_FOR_DAY = "3"
EXEC_CANCELED = "4"
EXEC_REPLACED = "5"
EXEC_PENDING_CANCEL = "6"
EXEC_REJECTED = "8"
EXEC_PENDING_NEW = "A"
EXEC_EXPIRED = "C"
EXEC_RESTATED = "D"
EXEC_TRADE = "F"
EXEC_TRADE_CORRECT = "G"
EXEC_TRADE_CANCEL = "H"
EXEC_ORDER_STATUS = "I"
FILL_EXEC_TYPES = frozenset({EXEC_TRADE, EXEC_PARTIAL_FILL_42, EXEC_FILL_42})
DONE_EXEC_TYPES = {EXEC_CANCELED: "canceled", EXEC_EXPIRED: "expired", EXEC_DONE_FOR_DAY: "done for day"}

# OrdStatus (39)
STATUS_NEW = "0"
STATUS_PARTIALLY_FILLED = "1"
STATUS_FILLED = "2"
STATUS_DONE_FOR_DAY = "3"
STATUS_CANCELED = "4"
STATUS_PENDING_CANCEL = "6"
STATUS_REJECTED = "8"
STATUS_EXPIRED = "C"
DONE_STATUSES = {STATUS_CANCELED: "canceled", STATUS_EXPIRED: "expired", STATUS_DONE_FOR_DAY: "done for day"}

ORD_REJ_UNKNOWN_ORDER = "5"
ORD_REJ_REASONS = {
    "0": "broker / exchange option", "1": "unknown symbol", "2": "exchange closed", "3": "order exceeds limit",
    "4": "too late to enter", "5": "unknown order", "6": "duplicate order", "7": "duplicate of a verbally communicated order",
    "8": "stale order", "9": "trade along required", "10": "invalid investor ID", "11": "unsupported order characteristic",
    "13": "incorrect quantity", "15": "unknown account(s)", "99": "other",
}
CXL_REJ_REASONS = {"0": "too late to cancel", "1": "unknown order", "2": "broker / exchange option",
                   "3": "order already in pending cancel or pending replace status", "6": "duplicate ClOrdID", "99": "other"}
BUSINESS_REJECT_REASONS = {"0": "other", "1": "unknown ID", "2": "unknown security", "3": "unsupported message type",
                           "4": "application not available", "5": "conditionally required field missing",
                           "6": "not authorized", "7": "DeliverTo firm not available at this time"}


@dataclass(frozen=True, slots=True)
class NotAFixOrder:
    """A ticket this adapter cannot turn into a FIX order; it is answered ORDER_REJECTED with `reason`."""

    reason: str


def new_order_single(ticket: Ticket) -> Fields | NotAFixOrder:
    """The NewOrderSingle body of a ticket, without TransactTime (set when it is sent)."""
    common = [(Tag.CL_ORD_ID, ticket.ticket_id)]
    tail = [(Tag.ORD_TYPE, ORD_TYPE[ticket.order_type]), (Tag.TIME_IN_FORCE, TIME_IN_FORCE[ticket.time_in_force])]
    if isinstance(ticket, SecurityOrderTicket):
        return [*common,
                (Tag.SYMBOL, ticket.instrument_id),
                (Tag.SECURITY_ID, ticket.instrument_id),
                (Tag.SECURITY_ID_SOURCE, SECURITY_ID_SOURCE_EXCHANGE_SYMBOL),
                (Tag.SIDE, SIDE[ticket.side]),
                (Tag.ORDER_QTY, decimal_to_str(ticket.quantity)),
                *tail,
                (Tag.CURRENCY, ticket.currency)]
    if isinstance(ticket, FxSpotOrderTicket):
        # FX convention: Currency (15) is the dealt currency and Side says whether it is bought.
        return [*common,
                (Tag.PRODUCT, PRODUCT_CURRENCY),
                (Tag.SYMBOL, ticket.pair),
                (Tag.SIDE, SIDE[Side.BUY]),
                (Tag.ORDER_QTY, decimal_to_str(ticket.buy_amount)),
                *tail,
                (Tag.CURRENCY, ticket.buy_currency)]
    if isinstance(ticket, CashTransferTicket):
        return NotAFixOrder("a CASH_TRANSFER ticket is a cash movement, not a FIX order: route it to a payments adapter")
    raise TypeError(f"unknown ticket {ticket!r}")


def with_transact_time(body: Fields, at: datetime) -> list[tuple[int, str]]:
    return [*body, (Tag.TRANSACT_TIME, utc_timestamp(at))]


_ORDER_IDENTITY = (Tag.PRODUCT, Tag.SYMBOL, Tag.SECURITY_ID, Tag.SECURITY_ID_SOURCE, Tag.SIDE)


def _identity(order_body: Fields) -> list[tuple[int, str]]:
    return [(tag, value) for tag, value in order_body if tag in _ORDER_IDENTITY]


def order_cancel_request(order_body: Fields, cancel_cl_ord_id: str, orig_cl_ord_id: str, at: datetime) -> list[tuple[int, str]]:
    quantity = next(value for tag, value in order_body if tag == Tag.ORDER_QTY)
    return [(Tag.CL_ORD_ID, cancel_cl_ord_id), (Tag.ORIG_CL_ORD_ID, orig_cl_ord_id), *_identity(order_body),
            (Tag.ORDER_QTY, quantity), (Tag.TRANSACT_TIME, utc_timestamp(at))]


def order_status_request(order_body: Fields, cl_ord_id: str, request_id: str) -> list[tuple[int, str]]:
    return [(Tag.CL_ORD_ID, cl_ord_id), *_identity(order_body), (Tag.ORD_STATUS_REQ_ID, request_id)]


def describe(code: str | None, table: dict[str, str]) -> str | None:
    if code is None:
        return None
    return f"{table.get(code, 'code')} ({code})"
