"""The adapter's order book: what it has sent, what the counterparty said, what it has published.

Pure (no Kafka, no sockets): instructions and FIX application messages in; order events,
messages to send and state changes out. Every order is remembered by ClOrdID for its life, so a
ticket is sent at most once, a report is published at most once (by ExecID, and a fill only when
its CumQty is above what was published), and a crash-restart resumes from the persisted records.

Fills are published **cumulatively** (`filled_qty` = CumQty, `avg_price` = AvgPx), never per fill:
an OrderStatusRequest answer only has the cumulative figures, and the processor refuses to mix
the two modes on one ticket. With one mode a fill inferred by reconciliation and the real report
arriving later (a resend) are the same cumulative level: the second is a duplicate, not a double
count (docs/fix.md).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from execution_domain import EventDetails, OrderEvent, OrderEventType
from execution_domain.canonical import decimal_from_str, decimal_to_str, format_timestamp, parse_timestamp
from execution_domain.tickets import Ticket
from fix_adapter import mapping as fx
from fix_adapter.codec import Fields, FixMessage, MsgType, Tag, parse_utc_timestamp

log = logging.getLogger(__name__)


class Phase(StrEnum):
    QUEUED = "QUEUED"  # taken from trade-tickets; not sent yet (session down, or resend after "unknown order")
    SENT = "SENT"  # its MsgSeqNum was committed, then it was written to the session; no report yet
    WORKING = "WORKING"  # the counterparty reported on it
    DONE = "DONE"  # filled, cancelled or rejected: nothing more is expected


class CancelPhase(StrEnum):
    QUEUED = "QUEUED"
    SENT = "SENT"
    DONE = "DONE"


@dataclass
class CancelRecord:
    cl_ord_id: str
    instruction_id: str
    phase: CancelPhase = CancelPhase.QUEUED
    out_seq: int | None = None

    def to_primitive(self) -> dict[str, Any]:
        return {"cl_ord_id": self.cl_ord_id, "instruction_id": self.instruction_id, "phase": self.phase.value,
                "out_seq": self.out_seq}

    @classmethod
    def from_primitive(cls, data: Mapping[str, Any]) -> CancelRecord:
        return cls(data["cl_ord_id"], data["instruction_id"], CancelPhase(data["phase"]), data["out_seq"])


@dataclass
class OrderRecord:
    """One order, persisted as JSON in the adapter's state topic (key `order/<ClOrdID>`)."""

    cl_ord_id: str
    ticket_id: str
    execution_id: str
    counterparty: str
    instruction_id: str
    order_qty: Decimal
    body: list[tuple[int, str]]  # the NewOrderSingle fields, without TransactTime
    phase: Phase = Phase.QUEUED
    out_seq: int | None = None
    sends: int = 0  # times written to a session: 1, or 2 after the counterparty said it never got it
    order_id: str | None = None  # the counterparty's OrderID, as first reported
    cum_qty: Decimal = Decimal(0)  # the highest CumQty published
    avg_px: Decimal | None = None
    accepted: bool = False  # ORDER_ACCEPTED (or a fill implying it) published
    outcome: str | None = None  # the final event type published
    exec_ids: list[str] = field(default_factory=list)  # every ExecID acted on, for the order's life
    last_activity: datetime | None = None  # last send or report (wall clock): drives the status timer
    cancels: list[CancelRecord] = field(default_factory=list)
    trace_parent: str | None = None  # the SUBMIT's W3C traceparent: the order's reports carry it on

    @property
    def done(self) -> bool:
        return self.phase is Phase.DONE

    def to_primitive(self) -> dict[str, Any]:
        return {
            "cl_ord_id": self.cl_ord_id, "ticket_id": self.ticket_id, "execution_id": self.execution_id,
            "counterparty": self.counterparty, "instruction_id": self.instruction_id,
            "order_qty": decimal_to_str(self.order_qty), "body": [[tag, value] for tag, value in self.body],
            "phase": self.phase.value, "out_seq": self.out_seq, "sends": self.sends, "order_id": self.order_id,
            "cum_qty": decimal_to_str(self.cum_qty),
            "avg_px": None if self.avg_px is None else decimal_to_str(self.avg_px),
            "accepted": self.accepted, "outcome": self.outcome, "exec_ids": list(self.exec_ids),
            "last_activity": None if self.last_activity is None else format_timestamp(self.last_activity),
            "cancels": [cancel.to_primitive() for cancel in self.cancels],
            "trace_parent": self.trace_parent,
        }

    @classmethod
    def from_primitive(cls, data: Mapping[str, Any]) -> OrderRecord:
        return cls(
            cl_ord_id=data["cl_ord_id"], ticket_id=data["ticket_id"], execution_id=data["execution_id"],
            counterparty=data["counterparty"], instruction_id=data["instruction_id"],
            order_qty=decimal_from_str(data["order_qty"]), body=[(int(tag), str(value)) for tag, value in data["body"]],
            phase=Phase(data["phase"]), out_seq=data["out_seq"], sends=data["sends"], order_id=data["order_id"],
            cum_qty=decimal_from_str(data["cum_qty"]),
            avg_px=None if data["avg_px"] is None else decimal_from_str(data["avg_px"]),
            accepted=data["accepted"], outcome=data["outcome"], exec_ids=list(data["exec_ids"]),
            last_activity=None if data["last_activity"] is None else parse_timestamp(data["last_activity"]),
            cancels=[CancelRecord.from_primitive(item) for item in data["cancels"]],
            trace_parent=data.get("trace_parent"),  # absent in records written before it was kept
        )


@dataclass(frozen=True, slots=True)
class Outgoing:
    """An application message to send on a counterparty's session."""

    counterparty: str
    msg_type: str
    cl_ord_id: str  # the order it is about
    body: Fields
    cancel_cl_ord_id: str | None = None


@dataclass
class BookCounters:
    duplicate_reports: int = 0
    stale_reports: int = 0
    unknown_reports: int = 0
    inferred_events: int = 0


class OrderBook:
    """ClOrdID -> OrderRecord, plus what changed since the service last persisted it."""

    def __init__(self, source_prefix: str = "FIX") -> None:
        self.orders: dict[str, OrderRecord] = {}
        self._cancel_index: dict[str, str] = {}  # cancel ClOrdID -> order ClOrdID
        self._sent_seq: dict[tuple[str, int], tuple[str, str]] = {}  # (counterparty, seq) -> (MsgType, ClOrdID)
        self.dirty: set[str] = set()
        self._arrival: dict[str, int] = {}  # ClOrdID -> arrival number: orders go out in the order they came
        self._active: set[str] = set()  # orders not done, or with a cancel still to send: what scans look at
        self.counters = BookCounters()
        self._source_prefix = source_prefix

    # -- restore -----------------------------------------------------------------------------------

    def load(self, record: OrderRecord) -> None:
        self.orders[record.cl_ord_id] = record
        self._arrival.setdefault(record.cl_ord_id, len(self._arrival))
        self._active.add(record.cl_ord_id)
        for cancel in record.cancels:
            self._cancel_index[cancel.cl_ord_id] = record.cl_ord_id
            if cancel.out_seq is not None:
                self._sent_seq[(record.counterparty, cancel.out_seq)] = (MsgType.ORDER_CANCEL_REQUEST, record.cl_ord_id)
        if record.out_seq is not None:
            self._sent_seq[(record.counterparty, record.out_seq)] = (MsgType.NEW_ORDER_SINGLE, record.cl_ord_id)

    # -- instructions ------------------------------------------------------------------------------

    def submit(self, execution_id: str, instruction_id: str, ticket: Ticket, counterparty: str | None,
               at: datetime, trace_parent: str | None = None) -> list[OrderEvent]:
        """A SUBMIT instruction. A ClOrdID seen before is never sent again (returns nothing)."""
        cl_ord_id = ticket.ticket_id
        if cl_ord_id in self.orders:
            log.info("ticket %s already taken: not sent again", cl_ord_id, extra={"ticket_id": cl_ord_id})
            return []
        body = fx.new_order_single(ticket)
        refusal = body.reason if isinstance(body, fx.NotAFixOrder) else None
        if counterparty is None and refusal is None:
            refusal = f"no FIX counterparty is configured for {ticket.ticket_type.value} tickets"
        order = OrderRecord(cl_ord_id, ticket.ticket_id, execution_id, counterparty or "-", instruction_id,
                            ticket.order_quantity, [] if isinstance(body, fx.NotAFixOrder) else list(body),
                            last_activity=at, trace_parent=trace_parent)
        self.orders[cl_ord_id] = order
        self.dirty.add(cl_ord_id)
        self._arrival[cl_ord_id] = len(self._arrival)
        self._active.add(cl_ord_id)
        if refusal is not None:
            order.phase, order.outcome = Phase.DONE, OrderEventType.ORDER_REJECTED.value
            log.warning("ticket %s refused: %s", cl_ord_id, refusal, extra={"ticket_id": cl_ord_id})
            return [self._event(order, f"{cl_ord_id}:refused", OrderEventType.ORDER_REJECTED, at,
                                EventDetails(reason=refusal))]
        return []

    def cancel(self, instruction_id: str, ticket_id: str, at: datetime) -> list[OrderEvent]:
        """A CANCEL instruction: an OrderCancelRequest once the order was sent; an unsent order is dropped."""
        order = self.orders.get(ticket_id)
        if order is None:
            log.warning("cancel for ticket %s, which this adapter never took: ignored", ticket_id,
                        extra={"ticket_id": ticket_id})
            return []
        if any(cancel.instruction_id == instruction_id for cancel in order.cancels):
            return []
        self.dirty.add(order.cl_ord_id)
        if order.phase is Phase.QUEUED and order.sends == 0:
            order.phase, order.outcome = Phase.DONE, OrderEventType.CANCELLED.value
            return [self._event(order, f"{order.cl_ord_id}:cancelled-unsent", OrderEventType.CANCELLED, at,
                                EventDetails(reason="cancelled before it was sent to the counterparty"))]
        if order.phase is Phase.DONE and order.counterparty == "-":
            return []
        cancel = CancelRecord(f"{order.cl_ord_id}.C{len(order.cancels) + 1}", instruction_id)
        order.cancels.append(cancel)
        self._cancel_index[cancel.cl_ord_id] = order.cl_ord_id
        self._active.add(order.cl_ord_id)
        return []

    # -- what to send ------------------------------------------------------------------------------

    def sendable(self, counterparty: str) -> list[Outgoing]:
        """Queued orders and cancels of a counterparty whose session is up, in the order they came."""
        out: list[Outgoing] = []
        for order in self._scan():
            if order.counterparty != counterparty:
                continue
            if order.phase is Phase.QUEUED:
                out.append(Outgoing(counterparty, MsgType.NEW_ORDER_SINGLE, order.cl_ord_id, order.body))
            else:
                for cancel in order.cancels:
                    if cancel.phase is CancelPhase.QUEUED:
                        out.append(Outgoing(counterparty, MsgType.ORDER_CANCEL_REQUEST, order.cl_ord_id, order.body,
                                            cancel.cl_ord_id))
        return out

    def mark_sent(self, outgoing: Outgoing, seq: int, at: datetime) -> None:
        """Record the MsgSeqNum an order or cancel goes out with (persisted before it is written)."""
        order = self.orders[outgoing.cl_ord_id]
        self.dirty.add(order.cl_ord_id)
        order.last_activity = at
        if outgoing.cancel_cl_ord_id is None:
            order.phase, order.out_seq = Phase.SENT, seq
            order.sends += 1
            self._sent_seq[(order.counterparty, seq)] = (MsgType.NEW_ORDER_SINGLE, order.cl_ord_id)
        else:
            cancel = next(c for c in order.cancels if c.cl_ord_id == outgoing.cancel_cl_ord_id)
            cancel.phase, cancel.out_seq = CancelPhase.SENT, seq
            self._sent_seq[(order.counterparty, seq)] = (MsgType.ORDER_CANCEL_REQUEST, order.cl_ord_id)

    def note_status_request(self, counterparty: str, seq: int, cl_ord_id: str) -> None:
        self._sent_seq[(counterparty, seq)] = (MsgType.ORDER_STATUS_REQUEST, cl_ord_id)

    def open_orders(self, counterparty: str) -> list[OrderRecord]:
        """Orders sent and not done: the ones a status request can settle."""
        return [o for o in self._scan() if o.counterparty == counterparty and o.phase in (Phase.SENT, Phase.WORKING)]

    def _scan(self) -> list[OrderRecord]:
        """The active orders in arrival order; drops the ones that are done with nothing left to send."""
        orders = []
        for cl_ord_id in sorted(self._active, key=self._arrival.__getitem__):
            order = self.orders[cl_ord_id]
            if order.done and not any(c.phase is CancelPhase.QUEUED for c in order.cancels):
                self._active.discard(cl_ord_id)
            else:
                orders.append(order)
        return orders

    def silent_orders(self, counterparty: str, now: datetime, after_s: float) -> list[OrderRecord]:
        return [o for o in self.open_orders(counterparty)
                if o.last_activity is None or (now - o.last_activity).total_seconds() >= after_s]

    def without_report(self, counterparty: str) -> int:
        return sum(1 for o in self.open_orders(counterparty) if o.phase is Phase.SENT)

    # -- reports -----------------------------------------------------------------------------------

    def on_message(self, counterparty: str, message: FixMessage, at: datetime) -> list[OrderEvent]:
        """An application message (or a session-level Reject) from a counterparty."""
        msg_type = message.msg_type
        if msg_type == MsgType.EXECUTION_REPORT:
            return self._on_execution_report(counterparty, message, at)
        if msg_type == MsgType.ORDER_CANCEL_REJECT:
            return self._on_cancel_reject(message, at)
        if msg_type in (MsgType.REJECT, MsgType.BUSINESS_MESSAGE_REJECT):
            return self._on_reject(counterparty, message, at)
        log.info("FIX message type %s from %s not used", msg_type, counterparty)
        return []

    def _order_of(self, message: FixMessage) -> OrderRecord | None:
        cl_ord_id = message.get(Tag.CL_ORD_ID)
        orig = message.get(Tag.ORIG_CL_ORD_ID)
        for candidate in (cl_ord_id, orig):
            if candidate is None:
                continue
            if candidate in self.orders:
                return self.orders[candidate]
            if candidate in self._cancel_index:
                return self.orders[self._cancel_index[candidate]]
        return None

    def _on_execution_report(self, counterparty: str, message: FixMessage, at: datetime) -> list[OrderEvent]:
        order = self._order_of(message)
        if order is None or order.counterparty != counterparty:
            self.counters.unknown_reports += 1
            log.error("ExecutionReport for an order this adapter never sent (ClOrdID %s) from %s: not published",
                      message.get(Tag.CL_ORD_ID), counterparty)
            return []
        exec_type = message.get(Tag.EXEC_TYPE)
        if exec_type == fx.EXEC_ORDER_STATUS:
            return self._on_status(order, message, at)
        exec_id = message.require(Tag.EXEC_ID)
        if exec_id in order.exec_ids:
            self.counters.duplicate_reports += 1
            log.info("ExecutionReport %s of %s already acted on (PossDup %s): counted once", exec_id, order.cl_ord_id,
                     message.poss_dup, extra={"ticket_id": order.ticket_id})
            return []
        order.exec_ids.append(exec_id)
        self._touch(order, message, at)
        occurred = _occurred_at(message, at)
        status = message.get(Tag.ORD_STATUS)
        if exec_type == fx.EXEC_NEW or (exec_type in fx.FILL_EXEC_TYPES and _no_fill(message) and status == fx.STATUS_NEW):
            # The second form: QuickFIX/J's Executor acknowledges with ExecType=Fill, OrdStatus=New, CumQty=0.
            return self._accepted(order, exec_id, occurred)
        if exec_type in fx.FILL_EXEC_TYPES:
            return self._fill(order, exec_id, message, occurred)
        if exec_type == fx.EXEC_REJECTED:
            reason = message.get(Tag.TEXT) or fx.describe(message.get(Tag.ORD_REJ_REASON), fx.ORD_REJ_REASONS) or "rejected"
            return self._final(order, exec_id, OrderEventType.ORDER_REJECTED, occurred, reason)
        if exec_type in fx.DONE_EXEC_TYPES:
            events = self._fill(order, f"{exec_id}:fill", message, occurred) if _cum_above(message, order) else []
            reason = message.get(Tag.TEXT) or fx.DONE_EXEC_TYPES[exec_type]
            self._close_cancels(order)
            return events + self._final(order, exec_id, OrderEventType.CANCELLED, occurred, reason)
        if exec_type == fx.EXEC_PENDING_CANCEL:
            return [self._event(order, exec_id, OrderEventType.PENDING_CANCEL, occurred)]
        if exec_type in (fx.EXEC_TRADE_CANCEL, fx.EXEC_TRADE_CORRECT):
            log.error("trade bust/correction %s on %s is not supported by the order-event contract: not published",
                      exec_id, order.cl_ord_id, extra={"ticket_id": order.ticket_id})
            return []
        log.info("ExecType %s on %s: nothing to publish", exec_type, order.cl_ord_id)
        return []

    def _accepted(self, order: OrderRecord, event_id: str, occurred: datetime) -> list[OrderEvent]:
        if order.phase is Phase.SENT:
            order.phase = Phase.WORKING
        if order.accepted or order.done:
            return []
        order.accepted = True
        return [self._event(order, event_id, OrderEventType.ORDER_ACCEPTED, occurred)]

    def _fill(self, order: OrderRecord, event_id: str, message: FixMessage, occurred: datetime) -> list[OrderEvent]:
        cum_qty, avg_px = message.decimal(Tag.CUM_QTY), message.decimal(Tag.AVG_PX)
        if cum_qty is None or avg_px is None or cum_qty <= 0 or avg_px <= 0:
            log.error("fill report %s of %s without a usable CumQty/AvgPx (%s/%s): not published", event_id,
                      order.cl_ord_id, cum_qty, avg_px, extra={"ticket_id": order.ticket_id})
            return []
        return self._cumulative(order, event_id, cum_qty, avg_px, message.get(Tag.ORD_STATUS),
                                message.decimal(Tag.LEAVES_QTY), occurred)

    def _cumulative(self, order: OrderRecord, event_id: str, cum_qty: Decimal, avg_px: Decimal, status: str | None,
                    leaves: Decimal | None, occurred: datetime) -> list[OrderEvent]:
        if cum_qty <= order.cum_qty:
            self.counters.stale_reports += 1
            log.info("fill report %s of %s at CumQty %s is not above the published %s: not published again",
                     event_id, order.cl_ord_id, cum_qty, order.cum_qty, extra={"ticket_id": order.ticket_id})
            return []
        complete = status == fx.STATUS_FILLED or leaves == 0 or cum_qty >= order.order_qty
        order.cum_qty, order.avg_px, order.accepted = cum_qty, avg_px, True
        if order.phase is not Phase.DONE:
            order.phase = Phase.DONE if complete else Phase.WORKING
        kind = OrderEventType.FILLED if complete else OrderEventType.PARTIAL_FILL
        if complete:
            order.outcome = kind.value
            self._close_cancels(order)
        return [self._event(order, event_id, kind, occurred, EventDetails(filled_qty=cum_qty, avg_price=avg_px))]

    def _final(self, order: OrderRecord, event_id: str, kind: OrderEventType, occurred: datetime,
               reason: str | None) -> list[OrderEvent]:
        if order.outcome is not None and order.outcome != OrderEventType.PARTIAL_FILL.value:
            log.info("%s for %s, already %s: not published", kind.value, order.cl_ord_id, order.outcome)
            return []
        order.phase, order.outcome = Phase.DONE, kind.value
        return [self._event(order, event_id, kind, occurred, EventDetails(reason=reason))]

    def _close_cancels(self, order: OrderRecord) -> None:
        for cancel in order.cancels:
            if cancel.phase is CancelPhase.SENT:
                cancel.phase = CancelPhase.DONE

    def _on_cancel_reject(self, message: FixMessage, at: datetime) -> list[OrderEvent]:
        order = self._order_of(message)
        if order is None:
            self.counters.unknown_reports += 1
            log.error("OrderCancelReject for an unknown order %s", message.get(Tag.ORIG_CL_ORD_ID))
            return []
        cancel_id = message.get(Tag.CL_ORD_ID) or ""
        reason = message.get(Tag.TEXT) or fx.describe(message.get(Tag.CXL_REJ_REASON), fx.CXL_REJ_REASONS) or "cancel rejected"
        return self._cancel_rejected(order, cancel_id, reason, _occurred_at(message, at), message)

    def _cancel_rejected(self, order: OrderRecord, cancel_id: str, reason: str, occurred: datetime,
                         message: FixMessage) -> list[OrderEvent]:
        event_id = f"{cancel_id}:cancel-rejected"
        if event_id in order.exec_ids:
            self.counters.duplicate_reports += 1
            return []
        order.exec_ids.append(event_id)
        self._touch(order, message, occurred)
        for cancel in order.cancels:
            if cancel.cl_ord_id == cancel_id:
                cancel.phase = CancelPhase.DONE
        return [self._event(order, event_id, OrderEventType.CANCEL_REJECTED, occurred, EventDetails(reason=reason))]

    def _on_reject(self, counterparty: str, message: FixMessage, at: datetime) -> list[OrderEvent]:
        """Session Reject (35=3) or BusinessMessageReject (35=j) of one of our messages, found by RefSeqNum."""
        ref_seq = message.integer(Tag.REF_SEQ_NUM)
        sent = None if ref_seq is None else self._sent_seq.get((counterparty, ref_seq))
        kind = "session Reject" if message.msg_type == MsgType.REJECT else "BusinessMessageReject"
        code_table = fx.BUSINESS_REJECT_REASONS if message.msg_type == MsgType.BUSINESS_MESSAGE_REJECT else {}
        text = message.get(Tag.TEXT) or fx.describe(message.get(Tag.BUSINESS_REJECT_REASON), code_table) or "rejected"
        if sent is None:
            log.warning("%s of message %s that carried no order: %s", kind, ref_seq, text)
            return []
        msg_type, cl_ord_id = sent
        order = self.orders[cl_ord_id]
        self.dirty.add(cl_ord_id)
        occurred = _occurred_at(message, at)
        reason = f"{kind} by {counterparty}: {text}"
        event_id = f"{cl_ord_id}:{'reject' if message.msg_type == MsgType.REJECT else 'bmr'}:{ref_seq}"
        if msg_type == MsgType.ORDER_STATUS_REQUEST:
            log.info("%s cannot answer OrderStatusRequest for %s (%s): status unknown", counterparty, cl_ord_id, text)
            return []
        if msg_type == MsgType.ORDER_CANCEL_REQUEST:
            cancel = next((c for c in order.cancels if c.out_seq == ref_seq), None)
            return self._cancel_rejected(order, cancel.cl_ord_id if cancel else f"{cl_ord_id}.C?", reason, occurred,
                                         message)
        if event_id in order.exec_ids:
            self.counters.duplicate_reports += 1
            return []
        order.exec_ids.append(event_id)
        self._touch(order, message, occurred)
        return self._final(order, event_id, OrderEventType.ORDER_REJECTED, occurred, reason)

    # -- reconciliation (RFC 5.4 option B) -------------------------------------------------------------

    def _on_status(self, order: OrderRecord, message: FixMessage, at: datetime) -> list[OrderEvent]:
        """An ExecutionReport answering our OrderStatusRequest: publish what the counterparty says we missed."""
        self.dirty.add(order.cl_ord_id)
        order.last_activity = at
        status = message.get(Tag.ORD_STATUS)
        occurred = _occurred_at(message, at)
        if message.get(Tag.ORD_REJ_REASON) == fx.ORD_REJ_UNKNOWN_ORDER:
            if order.phase is Phase.SENT and not order.exec_ids and order.sends == 1:
                # It never reached the counterparty (lost in a crash or a gap we filled): now it is sent once.
                log.warning("counterparty does not know order %s: sending it now", order.cl_ord_id,
                            extra={"ticket_id": order.ticket_id})
                order.phase = Phase.QUEUED
            else:
                log.error("counterparty does not know order %s, which it reported on before (or was sent twice)",
                          order.cl_ord_id, extra={"ticket_id": order.ticket_id})
            return []
        if order.order_id is None:
            order.order_id = message.get(Tag.ORDER_ID)
        base = f"{order.cl_ord_id}:status"
        events: list[OrderEvent] = []
        if status == fx.STATUS_REJECTED:
            reason = message.get(Tag.TEXT) or fx.describe(message.get(Tag.ORD_REJ_REASON), fx.ORD_REJ_REASONS) or "rejected"
            events += self._final(order, f"{base}:rejected", OrderEventType.ORDER_REJECTED, occurred, reason)
        else:
            if order.phase is Phase.SENT:
                order.phase = Phase.WORKING
            cum_qty, avg_px = message.decimal(Tag.CUM_QTY) or Decimal(0), message.decimal(Tag.AVG_PX)
            if cum_qty > order.cum_qty and avg_px is not None and avg_px > 0:
                fill_status = fx.STATUS_FILLED if status == fx.STATUS_FILLED else None
                events += self._cumulative(order, f"{base}:cum:{decimal_to_str(cum_qty)}", cum_qty, avg_px, fill_status,
                                           message.decimal(Tag.LEAVES_QTY) if status == fx.STATUS_FILLED else None,
                                           occurred)
            elif status == fx.STATUS_NEW and not order.accepted:
                events += self._accepted(order, f"{base}:new", occurred)
            if status in fx.DONE_STATUSES:
                reason = message.get(Tag.TEXT) or fx.DONE_STATUSES[status]
                events += self._final(order, f"{base}:{fx.DONE_STATUSES[status].replace(' ', '-')}",
                                      OrderEventType.CANCELLED, occurred, reason)
        self.counters.inferred_events += len(events)
        if events:
            log.warning("reconciliation of %s published %d missed event(s): %s", order.cl_ord_id, len(events),
                        ", ".join(e.event_type.value for e in events), extra={"ticket_id": order.ticket_id})
        return events

    # -- helpers -----------------------------------------------------------------------------------

    def _touch(self, order: OrderRecord, message: FixMessage, at: datetime) -> None:
        self.dirty.add(order.cl_ord_id)
        order.last_activity = at
        if order.order_id is None:
            order.order_id = message.get(Tag.ORDER_ID)
        if order.phase is Phase.SENT:
            order.phase = Phase.WORKING

    def _event(self, order: OrderRecord, event_id: str, kind: OrderEventType, occurred: datetime,
               details: EventDetails | None = None) -> OrderEvent:
        self.dirty.add(order.cl_ord_id)
        return OrderEvent(event_id=event_id, execution_id=order.execution_id, ticket_id=order.ticket_id,
                          source=f"{self._source_prefix}:{order.counterparty}", event_type=kind,
                          external_order_id=order.order_id, occurred_at=occurred, details=details or EventDetails())

    def take_dirty(self) -> list[OrderRecord]:
        records = [self.orders[cl_ord_id] for cl_ord_id in sorted(self.dirty)]
        self.dirty.clear()
        return records


def _occurred_at(message: FixMessage, fallback: datetime) -> datetime:
    for tag in (Tag.TRANSACT_TIME, Tag.SENDING_TIME):
        text = message.get(tag)
        if text:
            try:
                return parse_utc_timestamp(text)
            except ValueError:
                continue
    return fallback


def _no_fill(message: FixMessage) -> bool:
    last_qty, cum_qty = message.decimal(Tag.LAST_QTY), message.decimal(Tag.CUM_QTY)
    return not last_qty and not cum_qty


def _cum_above(message: FixMessage, order: OrderRecord) -> bool:
    cum_qty = message.decimal(Tag.CUM_QTY)
    return cum_qty is not None and cum_qty > order.cum_qty and (message.decimal(Tag.AVG_PX) or 0) > 0

