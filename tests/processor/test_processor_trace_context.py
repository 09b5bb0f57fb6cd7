"""W3C trace context through the processor: every output of a record carries the record's
`traceparent`; reports from an OMS that passes none continue the trace of the execution's create."""

from __future__ import annotations

from typing import Any

import pytest

from testkit.processor import ProcessorHarness, ScriptedOms, load_sample, wait_until
from wire import records as translate

pytestmark = pytest.mark.integration

CREATE_TRACE = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
OMS_TRACE = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def traceparents(harness: ProcessorHarness, topic: str, key: str) -> list[bytes | None]:
    """The `traceparent` header of each record with `key` on `topic`, in order."""
    harness.outputs.poll(0.2)
    found: list[bytes | None] = []
    for message in harness.outputs.raw[topic]:
        if message.key() != key.encode():
            continue
        headers: list[tuple[str, Any]] = list(message.headers() or [])
        found.append(next((value for name, value in headers if name == "traceparent"), None))
    return found


def test_create_traceparent_reaches_result_tickets_and_changes_and_reports_without_one_continue_it(
    harness: ProcessorHarness,
) -> None:
    harness.start()
    raw = load_sample("rfc_accept_all")
    harness.publish_proposal(raw)
    command_id = harness.create("key-trace", raw["proposal_id"], raw["version_no"], headers=[("traceparent", CREATE_TRACE)])
    execution_id = harness.result(command_id)["execution_id"]

    ScriptedOms(harness).run_until(lambda: harness.latest_status(execution_id) == "FILLED")  # reports carry no trace

    topics = harness.topics
    assert traceparents(harness, topics.command_results, command_id) == [CREATE_TRACE]
    ticket_ids = [i["ticket"]["ticket_id"] for i in harness.instructions(execution_id)]
    assert {t for ticket_id in ticket_ids for t in traceparents(harness, topics.trade_tickets, ticket_id)} == {CREATE_TRACE}
    changes = traceparents(harness, topics.execution_state_changes, execution_id)
    assert len(changes) > 2 and set(changes) == {CREATE_TRACE}


def test_report_with_its_own_traceparent_keeps_it_on_the_changes_it_causes(harness: ProcessorHarness) -> None:
    harness.start()
    raw = load_sample("rfc_accept_all")
    harness.publish_proposal(raw)
    command_id = harness.create("key-trace-oms", raw["proposal_id"], raw["version_no"],
                                headers=[("traceparent", CREATE_TRACE)])
    execution_id = harness.result(command_id)["execution_id"]
    created = len(traceparents(harness, harness.topics.execution_state_changes, execution_id))
    oms = ScriptedOms(harness)

    instructions = harness.instructions(execution_id)
    for instruction in instructions:
        oms.provider.submit_tickets(execution_id, [translate.ticket_from_record(instruction["ticket"])])
    harness.send_events(oms.provider.drain_events(), headers=[("traceparent", OMS_TRACE)])

    def caused_by_reports() -> list[bytes | None]:
        return traceparents(harness, harness.topics.execution_state_changes, execution_id)[created:]

    wait_until(lambda: len(caused_by_reports()) >= len(instructions), what="state changes from the reports")
    assert set(caused_by_reports()) == {OMS_TRACE}
