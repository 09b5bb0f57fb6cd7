"""Against the SCRIPTED acceptor (`testkit.fix_acceptor`), for what QuickFIX/J's Executor cannot do:
partial fills, cancels, duplicate reports, a sequence gap, and the adapter SIGKILLed between
sending an order and receiving its fill. Through the real broker and a real processor."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from fix_adapter.codec import FixMessage, MsgType, Tag
from testkit.fix_acceptor import Ack, Fill, Hold, LoseNext, RepeatLast, ScriptedFixAcceptor, Step
from testkit.fix_rig import FixRig, acceptor_address, counter, ticket_ids
from testkit.processor import ProcessorHarness, load_sample, wait_until

pytestmark = pytest.mark.integration

SAMPLE = load_sample("rfc_accept_all")  # SELL 100 SG_EQ_ETF -> FX buy 1500 USD -> BUY 10 US_EQ_ETF


def sell_script(*steps: Step) -> ScriptedFixAcceptor:
    """The acceptor: the SELL follows `steps`, every other order is acknowledged and filled."""
    def script(order: FixMessage) -> list[Step]:
        return list(steps) if order.get(Tag.SIDE) == "2" else [Ack(), Fill(price=Decimal("10"))]
    return ScriptedFixAcceptor(target_comp_id="ADAPTER", script=script)


@pytest.fixture
def acceptors() -> Iterator[list[ScriptedFixAcceptor]]:
    started: list[ScriptedFixAcceptor] = []
    yield started
    for acceptor in started:
        acceptor.stop()


TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def run_execution(harness: ProcessorHarness, rig: FixRig, acceptor: ScriptedFixAcceptor,
                  key: str) -> tuple[str, dict[str, str]]:
    harness.start()
    rig.start_adapter(acceptor_address(acceptor))
    harness.publish_proposal(SAMPLE)
    command_id = harness.create(key, SAMPLE["proposal_id"], SAMPLE["version_no"], headers=[("traceparent", TRACEPARENT)])
    execution_id = harness.result(command_id)["execution_id"]
    return execution_id, ticket_ids(harness, execution_id)


def sell_state(harness: ProcessorHarness, execution_id: str) -> dict[str, Any]:
    tickets = harness.view(execution_id).snapshot()["tickets"]
    return next(t for t in tickets if t["ticket"].get("side") == "SELL")


def test_scripted_partial_fills_then_fill_fold_to_filled_at_the_average_price(
        harness: ProcessorHarness, rig: FixRig, acceptors: list[ScriptedFixAcceptor]) -> None:
    acceptor = sell_script(Ack(), Fill(Decimal(40), Decimal("20")), Fill(Decimal(35), Decimal("20.2")),
                           Fill(None, Decimal("20.1")))
    acceptors.append(acceptor.start())
    execution_id, ids = run_execution(harness, rig, acceptor, "k-scr-partial")

    harness.wait_status(execution_id, "FILLED", timeout_s=60)

    statuses = [c["execution"]["status"] for c in harness.state_changes(execution_id)]
    assert "PARTIALLY_FILLED" in statuses
    sell = sell_state(harness, execution_id)
    assert (sell["status"], sell["filled_qty"]) == ("FILLED", Decimal(100))
    assert sell["avg_price"] == Decimal("20.095")  # (40*20 + 35*20.2 + 25*20.1) / 100
    events = rig.order_events(ids["SELL"])
    assert [(e["event_type"], e["details"]["filled_qty"]) for e in events] == [
        ("ORDER_ACCEPTED", None), ("PARTIAL_FILL", Decimal(40)), ("PARTIAL_FILL", Decimal(75)), ("FILLED", Decimal(100))]
    assert all(count == 1 for count in acceptor.new_orders.values()) and len(acceptor.new_orders) == 3
    assert rig.traceparents(ids["SELL"]) == {TRACEPARENT}  # the ticket's trace continues through the adapter


def test_scripted_duplicate_reports_with_possdup_are_counted_once(
        harness: ProcessorHarness, rig: FixRig, acceptors: list[ScriptedFixAcceptor]) -> None:
    # The fill again under its own MsgSeqNum (PossDupFlag) and again under a new one (PossResend, same ExecID).
    acceptor = sell_script(Ack(), Fill(Decimal(60), Decimal("20")), RepeatLast(same_seq=True), RepeatLast(),
                           Fill(None, Decimal("20")), RepeatLast())
    acceptors.append(acceptor.start())
    execution_id, ids = run_execution(harness, rig, acceptor, "k-scr-dup")

    harness.wait_status(execution_id, "FILLED", timeout_s=60)

    sell = sell_state(harness, execution_id)
    assert (sell["filled_qty"], sell["overfill_qty"]) == (Decimal(100), Decimal(0))
    assert [e["event_type"] for e in rig.order_events(ids["SELL"])] == ["ORDER_ACCEPTED", "PARTIAL_FILL", "FILLED"]
    assert counter(rig.adapters[-1], "fix_duplicate_reports_total") == 2  # the two new-number repeats


def test_scripted_sequence_gap_is_recovered_by_resend_request(
        harness: ProcessorHarness, rig: FixRig, acceptors: list[ScriptedFixAcceptor]) -> None:
    acceptor = sell_script(Ack(), LoseNext(), Fill(Decimal(50), Decimal("20")), Fill(None, Decimal("20")))
    acceptors.append(acceptor.start())
    execution_id, ids = run_execution(harness, rig, acceptor, "k-scr-gap")

    harness.wait_status(execution_id, "FILLED", timeout_s=60)

    assert [(e["event_type"], e["details"]["filled_qty"]) for e in rig.order_events(ids["SELL"])] == [
        ("ORDER_ACCEPTED", None), ("PARTIAL_FILL", Decimal(50)), ("FILLED", Decimal(100))]
    assert acceptor.resend_requests_received == 1
    assert counter(rig.adapters[-1], "fix_resend_requests_total", direction="out") == 1


def test_scripted_cancel_of_a_working_order_ends_cancelled(
        harness: ProcessorHarness, rig: FixRig, acceptors: list[ScriptedFixAcceptor]) -> None:
    acceptor = sell_script(Ack(), Fill(Decimal(30), Decimal("20")), Hold(), Fill())
    acceptors.append(acceptor.start())
    execution_id, ids = run_execution(harness, rig, acceptor, "k-scr-cancel")
    rig.wait_events(lambda events: any(e["event_type"] == "PARTIAL_FILL" for e in events), what="the partial fill")

    harness.cancel(execution_id)

    final = harness.wait_status(execution_id, "CANCELLED", timeout_s=60)["execution"]
    sell = next(t for t in final["tickets"] if t["ticket"].get("side") == "SELL")
    assert (sell["status"], sell["filled_qty"]) == ("CANCELLED", Decimal(30))
    assert [e["event_type"] for e in rig.order_events(ids["SELL"])][-2:] == ["PENDING_CANCEL", "CANCELLED"]
    assert MsgType.ORDER_CANCEL_REQUEST in acceptor.received_types()
    assert set(acceptor.new_orders) == {ids["SELL"]}  # the FX and the BUY were never released


@pytest.mark.parametrize("resend_mode", ["gapfill", "resend"])
def test_scripted_adapter_killed_between_order_and_fill_sends_once_and_publishes_the_fill_once(
        harness: ProcessorHarness, rig: FixRig, acceptors: list[ScriptedFixAcceptor], resend_mode: str) -> None:
    acceptor = sell_script(Ack(), Hold(), Fill(None, Decimal("20.5")))
    acceptor.resend_mode = resend_mode  # gapfill: the fill is learnt only by OrderStatusRequest
    acceptors.append(acceptor.start())
    execution_id, ids = run_execution(harness, rig, acceptor, f"k-scr-kill-{resend_mode}")
    rig.wait_events(lambda events: any(e["event_type"] == "ORDER_ACCEPTED" for e in events), what="the SELL's ack")

    rig.adapters[-1].kill()  # SIGKILL: no logout, no final commit
    wait_until(lambda: not acceptor.connected, 10, what="the acceptor to see the connection drop")
    acceptor.release(ids["SELL"])  # the SELL fills while the adapter is down
    restarted = rig.start_adapter(acceptor_address(acceptor))

    harness.wait_status(execution_id, "FILLED", timeout_s=60)

    assert dict(acceptor.new_orders) == {ids["SELL"]: 1, ids["FX"]: 1, ids["BUY"]: 1}
    sell_events = rig.order_events(ids["SELL"])
    assert [e["event_type"] for e in sell_events] == ["ORDER_ACCEPTED", "FILLED"]
    assert sell_events[-1]["details"]["filled_qty"] == Decimal(100)
    assert sell_events[-1]["details"]["avg_price"] == Decimal("20.5")
    assert counter(restarted, "fix_reconciliations_total", trigger="reconnect") >= 1
    if resend_mode == "gapfill":
        assert ":status:" in sell_events[-1]["event_id"]  # reconciled from the counterparty's status answer
    assert acceptor.logons == 2
    # The restart went on above the numbers committed before the kill: the acceptor asked for the gap,
    # the adapter answered with a SequenceReset-GapFill, never with the order again.
    assert MsgType.SEQUENCE_RESET in acceptor.received_types()
