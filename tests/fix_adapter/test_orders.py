"""The order book: tickets to FIX orders, reports to order events, reconciliation answers. Pure."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from execution_domain import OrderEventType
from execution_domain.policy import OrderType, TimeInForce
from execution_domain.proposal import Side
from execution_domain.tickets import CashTransferTicket, FxSpotOrderTicket, SecurityOrderTicket
from fix_adapter.codec import FixEncoder, FixMessage, MsgType, Tag, decode_one
from fix_adapter.mapping import NotAFixOrder, new_order_single
from fix_adapter.orders import OrderBook, OrderRecord, Outgoing, Phase

AT = datetime(2026, 2, 18, 10, 0, tzinfo=UTC)
THEM = FixEncoder("FIX.4.4", "EXEC", "ADAPTER")
SELL = SecurityOrderTicket("tkt_sell", "oi_1", "SG_EQ_ETF", Side.SELL, Decimal(100), "SGD", OrderType.MARKET,
                           TimeInForce.DAY, (), Decimal(25))
FX = FxSpotOrderTicket("tkt_fx", "oi_2", "USD/SGD", "USD", Decimal(1500), "SGD", Decimal(2025), OrderType.LIMIT,
                       TimeInForce.GTC, ("tkt_sell",))


def message(msg_type: str, body: list[tuple[int, object]], seq: int = 9) -> FixMessage:
    return decode_one(THEM.encode(msg_type, seq, [(tag, str(value)) for tag, value in body], sending_time=AT))


def execution_report(exec_id: str, exec_type: str, status: str, cum: object = 0, avg: object = 0, **extra: object) -> FixMessage:
    body: list[tuple[int, object]] = [(Tag.ORDER_ID, "O1"), (Tag.CL_ORD_ID, "tkt_sell"), (Tag.EXEC_ID, exec_id),
                                      (Tag.EXEC_TYPE, exec_type), (Tag.ORD_STATUS, status), (Tag.CUM_QTY, cum),
                                      (Tag.AVG_PX, avg)]
    tags = {"leaves": Tag.LEAVES_QTY, "text": Tag.TEXT, "rej": Tag.ORD_REJ_REASON, "last_qty": Tag.LAST_QTY}
    return message(MsgType.EXECUTION_REPORT, body + [(tags[k], v) for k, v in extra.items()])


def sent_book(seq: int = 4) -> OrderBook:
    book = OrderBook()
    book.submit("exec_1", "ins_1", SELL, "EXEC", AT)
    (outgoing,) = book.sendable("EXEC")
    book.mark_sent(outgoing, seq, AT)
    return book


def test_mapping_security_and_fx_tickets_become_new_order_singles() -> None:
    sell, fx = new_order_single(SELL), new_order_single(FX)
    assert not isinstance(sell, NotAFixOrder) and not isinstance(fx, NotAFixOrder)
    assert dict(sell) == {11: "tkt_sell", 55: "SG_EQ_ETF", 48: "SG_EQ_ETF", 22: "8", 54: "2",
                                             38: "100", 40: "1", 59: "0", 15: "SGD"}
    assert dict(fx) == {11: "tkt_fx", 460: "4", 55: "USD/SGD", 54: "1", 38: "1500", 40: "2",
                                           59: "1", 15: "USD"}


def test_orders_cash_transfer_and_unrouted_tickets_are_rejected_with_a_reason_never_sent() -> None:
    book = OrderBook()
    cash = CashTransferTicket(ticket_id="tkt_cash", intent_id="oi_3", currency="SGD", amount=Decimal(-10),
                              order_type=OrderType.MARKET, time_in_force=TimeInForce.DAY, dependencies=())
    (refused,) = book.submit("exec_1", "ins_1", cash, "EXEC", AT)
    (unrouted,) = book.submit("exec_1", "ins_2", FX, None, AT)
    assert refused.event_type is OrderEventType.ORDER_REJECTED and "CASH_TRANSFER" in (refused.details.reason or "")
    assert "no FIX counterparty" in (unrouted.details.reason or "")
    assert book.sendable("EXEC") == []


def test_orders_a_ticket_taken_before_is_never_sent_again() -> None:
    book = sent_book()
    assert book.submit("exec_1", "ins_again", SELL, "EXEC", AT) == [] and book.sendable("EXEC") == []


def test_orders_executor_style_ack_then_fill_publish_accepted_then_cumulative_filled() -> None:
    book = sent_book()
    # QuickFIX/J's Executor acknowledges with ExecType=2 (fill), OrdStatus=0 (new) and CumQty 0.
    (ack,) = book.on_message("EXEC", execution_report("1", "2", "0", leaves=100), AT)
    (fill,) = book.on_message("EXEC", execution_report("2", "2", "2", 100, "12.3", leaves=0, last_qty=100), AT)
    assert ack.event_type is OrderEventType.ORDER_ACCEPTED and ack.external_order_id == "O1"
    assert (fill.event_type, fill.event_id, fill.details.filled_qty, fill.details.avg_price) == (
        OrderEventType.FILLED, "2", Decimal(100), Decimal("12.3"))
    assert fill.details.fill_id is None and fill.details.last_qty is None  # cumulative: one mode with reconciliation
    assert book.orders["tkt_sell"].phase is Phase.DONE


def test_orders_same_exec_id_or_a_lower_cum_qty_publish_nothing() -> None:
    book = sent_book()
    book.on_message("EXEC", execution_report("F1", "F", "1", 60, 20), AT)
    assert book.on_message("EXEC", execution_report("F1", "F", "1", 60, 20), AT) == []
    assert book.on_message("EXEC", execution_report("F0", "F", "1", 40, 20), AT) == []  # out of order
    assert (book.counters.duplicate_reports, book.counters.stale_reports) == (1, 1)


def test_orders_session_reject_of_the_order_is_a_rejection_found_by_ref_seq_num() -> None:
    book = sent_book(seq=4)
    reject = message(MsgType.REJECT, [(Tag.REF_SEQ_NUM, 4), (Tag.REF_MSG_TYPE, "D"), (Tag.TEXT, "field=40")])
    (event,) = book.on_message("EXEC", reject, AT)
    assert event.event_type is OrderEventType.ORDER_REJECTED
    assert event.details.reason == "session Reject by EXEC: field=40"


def test_orders_business_reject_of_a_status_request_is_no_rejection() -> None:
    book = sent_book()
    book.note_status_request("EXEC", 7, "tkt_sell")
    bmr = message(MsgType.BUSINESS_MESSAGE_REJECT, [(Tag.REF_SEQ_NUM, 7), (Tag.REF_MSG_TYPE, "H"),
                                                    (Tag.BUSINESS_REJECT_REASON, 3)])
    assert book.on_message("EXEC", bmr, AT) == []
    assert book.orders["tkt_sell"].phase is Phase.SENT


def test_orders_business_reject_of_a_cancel_is_cancel_rejected() -> None:
    book = sent_book()
    book.cancel("ins_cancel", "tkt_sell", AT)
    (outgoing,) = book.sendable("EXEC")
    book.mark_sent(outgoing, 8, AT)
    bmr = message(MsgType.BUSINESS_MESSAGE_REJECT, [(Tag.REF_SEQ_NUM, 8), (Tag.REF_MSG_TYPE, "F"),
                                                    (Tag.TEXT, "Unsupported Message Type")])
    (event,) = book.on_message("EXEC", bmr, AT)
    assert event.event_type is OrderEventType.CANCEL_REJECTED
    assert event.details.reason == "BusinessMessageReject by EXEC: Unsupported Message Type"


def test_orders_cancel_of_an_order_never_sent_cancels_it_without_a_message() -> None:
    book = OrderBook()
    book.submit("exec_1", "ins_1", SELL, "EXEC", AT)
    (event,) = book.cancel("ins_2", "tkt_sell", AT)
    assert event.event_type is OrderEventType.CANCELLED and book.sendable("EXEC") == []


def test_orders_status_answer_infers_the_missed_fill_once() -> None:
    book = sent_book()
    status = execution_report("S1", "I", "2", 100, "20.5", leaves=0)
    (event,) = book.on_message("EXEC", status, AT)
    assert (event.event_type, event.details.filled_qty, event.details.avg_price) == (
        OrderEventType.FILLED, Decimal(100), Decimal("20.5"))
    late_real_report = execution_report("F9", "F", "2", 100, "20.5", leaves=0)
    assert book.on_message("EXEC", late_real_report, AT) == [] and book.counters.inferred_events == 1


def test_orders_status_unknown_order_requeues_an_order_that_never_arrived() -> None:
    book = sent_book()
    unknown = execution_report("S1", "I", "8", rej=5, text="unknown order")
    assert book.on_message("EXEC", unknown, AT) == []
    (again,) = book.sendable("EXEC")
    assert again == Outgoing("EXEC", MsgType.NEW_ORDER_SINGLE, "tkt_sell", book.orders["tkt_sell"].body)
    book.mark_sent(again, 11, AT)
    assert book.on_message("EXEC", unknown, AT) == [] and book.sendable("EXEC") == []  # never a third time


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["ack", "f30", "f60", "f100", "dup", "status"]), max_size=12))
def test_orders_any_report_sequence_publishes_increasing_cum_qty_and_survives_a_restore(steps: list[str]) -> None:
    book = sent_book()
    reports = {"ack": execution_report("A", "0", "0"), "f30": execution_report("F30", "F", "1", 30, 20),
               "f60": execution_report("F60", "F", "1", 60, 20), "f100": execution_report("F100", "F", "2", 100, 20),
               "dup": execution_report("F30", "F", "1", 30, 20), "status": execution_report("S", "I", "1", 60, 20)}
    published = []
    for step in steps:
        published += [e.details.filled_qty for e in book.on_message("EXEC", reports[step], AT) if e.details.filled_qty]
    assert published == sorted(set(published))
    record = book.orders["tkt_sell"]
    assert OrderRecord.from_primitive(record.to_primitive()) == record
