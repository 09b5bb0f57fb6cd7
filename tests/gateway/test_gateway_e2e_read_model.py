"""The read model's store against the real broker: a gateway restarted on its state directory
resumes from the offsets it wrote (reading only what was committed while it was down), and a
store built from other topics is rebuilt rather than served."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.app import BACKEND
from testkit.gateway import Client, LiveGateway, Stack, create_body, gateway_config, new_key, unique_proposal
from testkit.processor import ProcessorHarness, drain_until_quiet

pytestmark = pytest.mark.integration


def consumed(gateway: LiveGateway) -> float:
    """State changes the gateway's read model has read since it started."""
    return sum(metric(gateway, "gateway_read_model_state_changes_total", result=result)
               for result in ("applied", "dropped"))


def metric(gateway: LiveGateway, name: str, **labels: str) -> float:
    from gateway.app import HANDLERS

    value = gateway.app[HANDLERS].metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def state_changes_in_topic(stack: Stack) -> int:
    drain_until_quiet(stack.harness.outputs.poll, 0.5)
    return len(stack.harness.outputs.records[stack.harness.topics.execution_state_changes])


def create_dry_runs(stack: Stack, proposal: dict, count: int) -> list[str]:
    created = []
    for _ in range(count):
        response = stack.client.create(create_body(proposal, policy={"dry_run": True}), new_key("restart"))
        assert response.status_code == 201, response.text
        created.append(response.json()["execution_id"])
    return created


def test_gateway_restarted_on_its_state_directory_resumes_where_it_stopped(stack: Stack, tmp_path: Path) -> None:
    proposal = unique_proposal("rfc_accept_all", "resume")
    stack.publish(proposal)
    before = create_dry_runs(stack, proposal, 3)
    state = tmp_path / "gateway-state"

    first = LiveGateway(gateway_config(stack.harness, state_dir=state))
    try:
        first.wait_ready()
        assert metric(first, "gateway_read_model_rebuilds_total", reason="new") == 1
        assert consumed(first) == state_changes_in_topic(stack)  # everything, from the beginning
    finally:
        first.stop()
    assert (state / "read-model").is_dir() and (state / "gateway.lock").exists()  # kept across restarts
    at_stop = state_changes_in_topic(stack)

    during = create_dry_runs(stack, proposal, 2)  # committed while no gateway of this store runs
    second = LiveGateway(gateway_config(stack.harness, state_dir=state))
    try:
        second.wait_ready()
        assert metric(second, "gateway_read_model_rebuilds_total", reason="new") == 0
        assert metric(second, "gateway_read_model_rebuilds_total", reason="foreign") == 0
        assert consumed(second) == state_changes_in_topic(stack) - at_stop  # only what it had not read
        client = Client(second.url)
        listed = client.get("/rebalance/executions", params={"proposal_id": proposal["proposal_id"]}).json()
        assert [item["execution_id"] for item in listed["items"]] == list(reversed(before + during))
        for execution_id in before + during:
            body = client.get(f"/rebalance/executions/{execution_id}").json()
            assert body["status"] == "CREATED" and body["event_count"] == len(body["events"]) >= 1
        offsets = second.app[BACKEND].read_model.store.offsets()
        assert {topic for topic, _ in offsets} == {stack.harness.topics.execution_state_changes,
                                                   stack.harness.topics.execution_snapshots}
    finally:
        second.stop()


def test_a_store_built_from_other_topics_is_rebuilt_from_these(
    stack: Stack, kafka_bootstrap: str, tmp_path: Path,
) -> None:
    proposal = unique_proposal("rfc_accept_all", "foreign")
    stack.publish(proposal)
    [execution_id] = create_dry_runs(stack, proposal, 1)
    state = tmp_path / "gateway-state"
    other = ProcessorHarness(kafka_bootstrap, tmp_path / "other")  # other topics, nothing in them
    try:
        elsewhere = LiveGateway(gateway_config(other, state_dir=state))
        try:
            elsewhere.wait_ready()
            assert Client(elsewhere.url).get(f"/rebalance/executions/{execution_id}").status_code == 404
        finally:
            elsewhere.stop()
    finally:
        other.close()

    here = LiveGateway(gateway_config(stack.harness, state_dir=state))
    try:
        here.wait_ready()
        assert metric(here, "gateway_read_model_rebuilds_total", reason="foreign") == 1
        assert consumed(here) == state_changes_in_topic(stack)
        assert Client(here.url).get(f"/rebalance/executions/{execution_id}").status_code == 200
    finally:
        here.stop()
