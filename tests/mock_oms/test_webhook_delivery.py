"""The mock OMS can answer through the gateway's signed webhook instead of Kafka."""

from __future__ import annotations

import threading

import pytest

from mock_oms.engine import MockOmsEngine
from mock_oms.scenarios import ScenarioBook
from mock_oms.service import MockOmsService, WebhookDelivery
from testkit.gateway import WEBHOOK_SECRET, LiveGateway, gateway_config
from testkit.processor import ProcessorHarness, load_sample

pytestmark = pytest.mark.integration


def test_mock_oms_drives_executions_through_the_signed_webhook(harness: ProcessorHarness) -> None:
    harness.start()
    gateway = LiveGateway(gateway_config(harness))
    gateway.wait_ready()
    accept, reject = load_sample("rfc_accept_all"), load_sample("rfc_fx_reject")
    book = ScenarioBook("accept_and_fill", {reject["proposal_id"]: "reject_fx"})
    delivery = WebhookDelivery(gateway.url, WEBHOOK_SECRET)
    service = MockOmsService({"bootstrap.servers": harness.bootstrap}, tickets_topic=harness.topics.trade_tickets,
                             group_id=f"{harness.application_id}-oms", engine=MockOmsEngine(book, latency_ms=(1, 10)),
                             deliver=delivery)
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop.is_set,), daemon=True)
    thread.start()
    try:
        executions = {}
        for raw in (accept, reject):
            harness.publish_proposal(raw)
            executions[raw["proposal_id"]] = harness.result(
                harness.create(f"k-webhook-{raw['proposal_id']}", raw["proposal_id"], raw["version_no"]))["execution_id"]
        harness.wait_status(executions[accept["proposal_id"]], "FILLED", timeout_s=60)
        harness.wait_status(executions[reject["proposal_id"]], "REJECTED", timeout_s=60)
    finally:
        stop.set()
        thread.join(10)
        gateway.stop()

    assert delivery.rejected == []
    assert service.events_sent > 0
    # The events came in through the webhook: their ids are the OMS's, their source the mock's.
    final = harness.view(executions[accept["proposal_id"]]).snapshot()
    assert all(t["external_order_id"].startswith("OMS-") for t in final["tickets"])
