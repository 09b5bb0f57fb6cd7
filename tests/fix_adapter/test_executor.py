"""Through the real broker, a real processor and QuickFIX/J's Executor (an independent FIX engine
from Maven Central): tickets become FIX orders in dependency order and fold to their final states."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from fix_adapter.launch import AdapterProcess
from local_fix.executor import LocalFixExecutor
from testkit.fix_rig import FixRig, counter, executor_address
from testkit.processor import ProcessorHarness, load_sample, wait_until
from wire import serde

pytestmark = pytest.mark.integration


def incoming_orders(output: str) -> list[dict[str, str]]:
    """NewOrderSingle messages the Executor logged as received (its screen log), as tag -> value."""
    orders = []
    for match in re.finditer(r"incoming> \((8=FIX[^)]*\x0135=D\x01[^)]*)\)", output):
        orders.append(dict(pair.split("=", 1) for pair in match.group(1).split("\x01") if "=" in pair))
    return orders


def tickets_by_kind(state_change: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for ticket in state_change["execution"]["tickets"]:
        inner = ticket["ticket"]
        kind = "FX" if inner["ticket_type"] == "FX_SPOT_ORDER" else inner["side"]
        out[kind] = ticket
    return out


def start_execution(harness: ProcessorHarness, rig: FixRig, executor: LocalFixExecutor, key: str,
                    **policy: str) -> tuple[AdapterProcess, str]:
    """Processor and adapter up, the SELL -> FX -> BUY sample published, one execution created."""
    harness.start()
    adapter = rig.start_adapter(executor_address(executor))
    raw = load_sample("rfc_accept_all")
    harness.publish_proposal(raw)
    result = harness.result(harness.create(key, raw["proposal_id"], raw["version_no"], policy=policy or None))
    return adapter, result["execution_id"]


def test_executor_fills_sell_fx_buy_in_dependency_order(
        harness: ProcessorHarness, rig: FixRig, make_executor: Callable[..., LocalFixExecutor]) -> None:
    executor = make_executor()
    adapter, execution_id = start_execution(harness, rig, executor, "k-fix-fill")

    final = harness.wait_status(execution_id, "FILLED", timeout_s=60)

    tickets = tickets_by_kind(final)
    assert {kind: t["status"] for kind, t in tickets.items()} == {"SELL": "FILLED", "FX": "FILLED", "BUY": "FILLED"}
    sent = incoming_orders(executor.output())
    assert [o["11"] for o in sent] == [tickets[k]["ticket"]["ticket_id"] for k in ("SELL", "FX", "BUY")]
    sell, fx, buy = sent
    assert (sell["54"], sell["55"], sell["38"], sell["40"], sell["59"], sell["15"]) == ("2", "SG_EQ_ETF", "100", "1", "0", "SGD")
    assert (fx["460"], fx["55"], fx["54"], fx["38"], fx["15"]) == ("4", "USD/SGD", "1", "1500", "USD")
    assert (buy["54"], buy["55"], buy["38"]) == ("1", "US_EQ_ETF", "10")
    events = rig.order_events()
    assert [e["event_type"] for e in events if e["ticket_id"] == tickets["SELL"]["ticket"]["ticket_id"]] == [
        "ORDER_ACCEPTED", "FILLED"]
    assert all(e["execution_id"] == execution_id and e["source"] == "FIX:EXEC" for e in events)
    assert tickets["BUY"]["filled_qty"] == 10 and tickets["BUY"]["avg_price"] == Decimal("12.3")
    assert counter(adapter, "fix_messages_total", direction="out", msg_type="NewOrderSingle") == 3
    assert harness.dead_letters() == []


def test_executor_refused_order_type_rejects_the_execution_and_holds_back_dependants(
        harness: ProcessorHarness, rig: FixRig, make_executor: Callable[..., LocalFixExecutor]) -> None:
    executor = make_executor(valid_order_types="1")  # market orders only: a LIMIT order is refused
    _, execution_id = start_execution(harness, rig, executor, "k-fix-limit", order_type="LIMIT")

    final = harness.wait_status(execution_id, "REJECTED", timeout_s=60)

    tickets = tickets_by_kind(final)
    assert tickets["SELL"]["status"] == "REJECTED"
    assert "Value is incorrect (out of range) for this tag, field=40" in tickets["SELL"]["reason"]
    assert "session Reject by EXEC" in tickets["SELL"]["reason"]
    assert not tickets["FX"]["released"] and not tickets["BUY"]["released"]
    assert [o["11"] for o in incoming_orders(executor.output())] == [tickets["SELL"]["ticket"]["ticket_id"]]
    assert [e["event_type"] for e in rig.order_events()] == ["ORDER_REJECTED"]


def test_executor_business_reject_of_a_cancel_is_recorded_as_cancel_rejected(
        harness: ProcessorHarness, rig: FixRig, make_executor: Callable[..., LocalFixExecutor]) -> None:
    adapter, execution_id = start_execution(harness, rig, make_executor(), "k-fix-cancel")
    harness.wait_status(execution_id, "FILLED", timeout_s=60)
    submit = next(i for i in harness.instructions(execution_id) if i["ticket"].get("side") == "SELL")

    # A CANCEL that crossed the fill, as the processor sends when its view lags the OMS.
    cancel = {**submit, "instruction_id": f"{submit['instruction_id']}-cancel", "instruction": "CANCEL",
              "issued_at": datetime.now(UTC), "ticket": ("com.wealth.execution.v1.SecurityOrderTicket", submit["ticket"])}
    harness.produce(harness.topics.trade_tickets, submit["ticket"]["ticket_id"], serde.encode("TicketInstruction", cancel))

    ticket_id = submit["ticket"]["ticket_id"]
    rig.wait_events(lambda events: any(e["event_type"] == "CANCEL_REJECTED" for e in events), what="CANCEL_REJECTED")
    rejected = next(e for e in rig.order_events(ticket_id) if e["event_type"] == "CANCEL_REJECTED")
    assert rejected["details"]["reason"] == "BusinessMessageReject by EXEC: Unsupported Message Type"
    assert counter(adapter, "fix_messages_total", direction="in", msg_type="BusinessMessageReject") == 1

    def logged() -> bool:
        log = harness.view(execution_id).snapshot()["events"]
        return any(entry.get("event_id") == rejected["event_id"] for entry in log)
    wait_until(logged, 30, what="the cancel-reject in the execution's log")


def test_executor_session_resumes_after_the_adapter_is_sigkilled(
        harness: ProcessorHarness, rig: FixRig, make_executor: Callable[..., LocalFixExecutor]) -> None:
    executor = make_executor()
    adapter, first = start_execution(harness, rig, executor, "k-fix-kill-1")
    harness.wait_status(first, "FILLED", timeout_s=60)
    adapter.kill()

    # The restart goes on above every MsgSeqNum committed before the kill: QuickFIX/J asks for the
    # gap, the adapter gap-fills it, and the session carries on with the same sequence numbers.
    restarted = rig.start_adapter(executor_address(executor))
    raw = load_sample("rfc_partial_then_fill")
    harness.publish_proposal(raw)
    second = harness.result(harness.create("k-fix-kill-2", raw["proposal_id"], raw["version_no"]))["execution_id"]
    harness.wait_status(second, "FILLED", timeout_s=60)

    assert counter(restarted, "fix_messages_total", direction="in", msg_type="ResendRequest") == 1
    assert counter(restarted, "fix_messages_total", direction="out", msg_type="SequenceReset") == 1
    assert "MsgSeqNum too low" not in executor.output()
    sent = [o["11"] for o in incoming_orders(executor.output())]
    tickets = [t["ticket"]["ticket_id"] for execution_id in (first, second)
               for t in harness.view(execution_id).snapshot()["tickets"]]
    assert sorted(sent) == sorted(tickets)  # every ticket of both executions sent once
