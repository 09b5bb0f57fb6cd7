"""The mock OMS process's loop on the Kafka contract, against a real processor: the RFC §12.2
scenarios end right, also when reports are duplicated and delivered out of order."""

from __future__ import annotations

import threading

import pytest

from mock_oms.engine import Faults, MockOmsEngine
from mock_oms.scenarios import ScenarioBook
from mock_oms.service import KafkaDelivery, MockOmsService
from testkit.processor import ProcessorHarness, load_sample, wait_until

pytestmark = pytest.mark.integration

SCENARIOS = {"rfc_accept_all": "accept_and_fill", "rfc_fx_reject": "reject_fx",
             "rfc_partial_then_fill": "partial_then_fill", "sgd_multi_currency": "seeded_mix"}
EXPECTED = {"rfc_accept_all": "FILLED", "rfc_fx_reject": "REJECTED", "rfc_partial_then_fill": "FILLED",
            "sgd_multi_currency": "FILLED"}


@pytest.mark.parametrize("faults", [Faults(), Faults(duplicate_rate=0.3, reorder_rate=0.3)],
                         ids=["clean-delivery", "duplicated-and-reordered"])
def test_mock_oms_drives_each_rfc_scenario_to_its_final_state(harness: ProcessorHarness, faults: Faults) -> None:
    harness.start()
    samples = {name: load_sample(name) for name in SCENARIOS}
    book = ScenarioBook("accept_and_fill", {raw["proposal_id"]: SCENARIOS[name] for name, raw in samples.items()})
    base = {"bootstrap.servers": harness.bootstrap}
    delivery = KafkaDelivery(base, harness.topics.order_events)
    service = MockOmsService(base, tickets_topic=harness.topics.trade_tickets, group_id=f"{harness.application_id}-oms",
                             engine=MockOmsEngine(book, seed=11, latency_ms=(1, 20), faults=faults), deliver=delivery)
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop.is_set,), daemon=True)
    thread.start()
    try:
        executions = {}
        for name, raw in samples.items():
            harness.publish_proposal(raw)
            result = harness.result(harness.create(f"k-oms-{name}", raw["proposal_id"], raw["version_no"]))
            executions[name] = result["execution_id"]
        for name, execution_id in executions.items():
            harness.wait_status(execution_id, EXPECTED[name], timeout_s=60)
        # Before stopping: a duplicate still due (its latency not yet over) is sent only while it runs.
        wait_until(lambda: service.idle, 10, what="mock OMS idle")
    finally:
        stop.set()
        thread.join(10)
        delivery.flush()

    rejected = harness.view(executions["rfc_fx_reject"]).snapshot()
    assert all(not t["released"] for t in rejected["tickets"] if t["ticket"].get("side") == "BUY")
    partial = [c["execution"]["status"] for c in harness.state_changes(executions["rfc_partial_then_fill"])]
    assert "PARTIALLY_FILLED" in partial
    assert harness.dead_letters() == []
