"""RFC §12.2 through Kafka: a real processor, a scripted OMS on the Kafka contract."""

from __future__ import annotations

from decimal import Decimal

import pytest

from execution_domain import execution_id_for_key, parse_artifact
from execution_domain.tickets import generate_tickets
from mock_oms.provider import MockAccept, MockFill, MockReject
from testkit.processor import ProcessorHarness, ScriptedOms, load_sample

pytestmark = pytest.mark.integration


def tickets_of(sample: str) -> dict[str, str]:
    """intent_id -> ticket_id of a sample proposal."""
    artifact = parse_artifact(load_sample(sample))
    from execution_domain import ExecutionPolicy

    return {t.intent_id: t.ticket_id for t in generate_tickets(artifact, ExecutionPolicy(max_slippage_bps="25"))}


def start_execution(harness: ProcessorHarness, sample: str, key: str) -> tuple[str, dict]:
    raw = load_sample(sample)
    harness.publish_proposal(raw)
    command_id = harness.create(key, raw["proposal_id"], raw["version_no"])
    result = harness.result(command_id)
    assert result["outcome"] == "CREATED", result
    return result["execution_id"], raw


def test_all_tickets_accepted_and_filled_ends_filled_in_dependency_order(harness: ProcessorHarness) -> None:
    harness.start()
    execution_id, _ = start_execution(harness, "rfc_accept_all", "key-accept-all")
    oms = ScriptedOms(harness)

    oms.run_until(lambda: harness.latest_status(execution_id) == "FILLED")

    final = harness.view(execution_id).snapshot()  # every ticket: the changes folded as a consumer does
    assert all(t["status"] == "FILLED" for t in final["tickets"])
    # Released in dependency order: SELL before the FX it funds, FX before the BUY.
    submitted = [i["ticket"]["ticket_type"] + ":" + i["ticket"].get("side", "") for i in harness.instructions(execution_id)]
    assert submitted.index("FX_SPOT_ORDER:") > min(i for i, s in enumerate(submitted) if s.endswith("SELL"))
    assert submitted.index("FX_SPOT_ORDER:") < max(i for i, s in enumerate(submitted) if s.endswith("BUY"))
    # Every ticket submitted exactly once.
    ids = [i["ticket"]["ticket_id"] for i in harness.instructions(execution_id)]
    assert len(ids) == len(set(ids)) == len(final["tickets"])


def test_fx_rejected_blocks_the_dependent_buy_and_rejects_the_execution(harness: ProcessorHarness) -> None:
    harness.start()
    tickets = tickets_of("rfc_fx_reject")
    execution_id, raw = start_execution(harness, "rfc_fx_reject", "key-fx-reject")
    oms = ScriptedOms(harness)
    fx_intent = next(i["intent_id"] for i in raw["trades_and_funding"]["intents"] if i["intent_type"] == "FX_SPOT")
    oms.provider.script(tickets[fx_intent], MockReject("insufficient SGD liquidity"))

    oms.run_until(lambda: harness.latest_status(execution_id) == "REJECTED")
    oms.pump()
    harness.outputs.drain(0.5)

    final = harness.view(execution_id).snapshot()  # every ticket: the changes folded as a consumer does
    buys = [t for t in final["tickets"] if t["ticket"].get("side") == "BUY"]
    assert buys and all(t["status"] == "CANCELLED" and not t["released"] for t in buys)
    released = {i["ticket"]["ticket_id"] for i in harness.instructions(execution_id)}
    assert not released & {t["ticket"]["ticket_id"] for t in buys}, "a BUY was released"


def test_partial_fill_then_fill_passes_through_partially_filled(harness: ProcessorHarness) -> None:
    harness.start()
    tickets = tickets_of("rfc_partial_then_fill")
    execution_id, raw = start_execution(harness, "rfc_partial_then_fill", "key-partial")
    oms = ScriptedOms(harness)
    for intent in raw["trades_and_funding"]["intents"]:
        if intent["intent_type"] == "SECURITY_TRADE":
            half = Decimal(intent["quantity"]) / 2
            oms.provider.script(tickets[intent["intent_id"]], MockAccept(), MockFill(half, Decimal("10")),
                                MockFill(None, Decimal("12")))

    oms.run_until(lambda: harness.latest_status(execution_id) == "FILLED")

    statuses = [c["execution"]["status"] for c in harness.state_changes(execution_id)]
    assert "PARTIALLY_FILLED" in statuses and statuses[-1] == "FILLED"
    final = harness.view(execution_id).snapshot()  # every ticket: the changes folded as a consumer does
    for ticket in final["tickets"]:
        if ticket["ticket"]["ticket_type"] == "SECURITY_ORDER":
            assert ticket["filled_qty"] == ticket["order_quantity"]
            assert ticket["avg_price"] == Decimal("11")  # half at 10, half at 12


def test_state_changes_are_numbered_from_one_without_gaps(harness: ProcessorHarness) -> None:
    harness.start()
    execution_id, _ = start_execution(harness, "sgd_multi_currency", "key-seq")
    ScriptedOms(harness).run_until(lambda: harness.latest_status(execution_id) == "FILLED")
    sequences = [c["sequence"] for c in harness.state_changes(execution_id)]
    assert sequences == list(range(1, len(sequences) + 1))
    assert execution_id == execution_id_for_key("key-seq")
