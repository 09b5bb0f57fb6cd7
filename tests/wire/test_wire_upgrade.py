"""A schema upgrade through real processor and gateway processes (issue #11).

Forward: records written with the current version of every input and output topic (proposals,
commands, order events; state changes, command results, tickets) are processed and served after the
processor and gateway restart with the next version (an added optional field, a removed field that
had a default, a new enum symbol where the reader has a default): the GETs answer for executions
created before the upgrade, from the state changes written before it.

Reverse (FULL_TRANSITIVE topics): after a rollback to readers of the current version that know the
next one (released ahead: docs/wire.md), records written by the next version are processed and served.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import testkit.processor
from execution_domain import execution_id_for_key
from testkit.gateway import Client, create_body, new_key, unique_proposal
from testkit.processor import ProcessorHarness, ScriptedOms, committed_records, wait_until
from testkit.schema_evolution import ahead_schema_dir, copy_schema_dir, evolved_schema_dir
from testkit.upgrade import CodecsAsSerde, start_stack
from wire import serde

pytestmark = pytest.mark.integration


def wait_execution(client: Client, execution_id: str, check: Any, what: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        response = client.get(f"/rebalance/executions/{execution_id}")
        body: dict[str, Any] = response.json()
        return body if response.status_code == 200 and check(body) else None
    result: dict[str, Any] = wait_until(found, 60, interval_s=0.2, what=what)
    return result


def create(client: Client, proposal: dict[str, Any], label: str) -> str:
    """Create an execution; retried while the processor has not read the proposal yet (404)."""
    key = new_key(label)

    def created() -> str | None:
        response = client.create(create_body(proposal), key)
        return str(response.json()["execution_id"]) if response.status_code in (200, 201, 202) else None
    return str(wait_until(created, 30, interval_s=0.2, what=f"create {label}"))


def dead_letters(harness: ProcessorHarness, codecs: serde.Codecs) -> list[dict[str, Any]]:
    """Every committed dead letter (read to each partition's end: an empty list means none)."""
    topic = harness.topics.dead_letters
    return [codecs.codec("DeadLetter").decode(m.value() or b"", topic=topic, partition=m.partition() or 0,
                                              offset=m.offset() or 0)
            for m in committed_records(harness.bootstrap, topic)]


@pytest.fixture
def harness(kafka_bootstrap: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    harness = ProcessorHarness(kafka_bootstrap, tmp_path)
    yield harness
    harness.close()


def test_upgrade_records_of_the_previous_version_are_processed_and_served_after_the_upgrade(
        harness: ProcessorHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    current = copy_schema_dir(tmp_path / "current")
    evolved = evolved_schema_dir(tmp_path / "next")
    filled = unique_proposal("rfc_accept_all", "filled")
    pending = unique_proposal("rfc_accept_all", "pending")
    later = unique_proposal("rfc_accept_all", "later")

    old = start_stack(harness, current, "old")
    client = Client(old.gateway_url)
    for proposal in (filled, pending):
        harness.publish_proposal(proposal)
    first = create(client, filled, "filled")
    ScriptedOms(harness, execution_id=first).run_until(lambda: harness.latest_status(first) == "FILLED")
    second = create(client, pending, "pending")
    wait_until(lambda: harness.instructions(second), what="the second execution's first tickets")
    old.stop()

    # While everything is down, producers that have not upgraded write the current version: an OMS
    # adapter answers the released tickets, upstream publishes a proposal, a create command is in flight.
    ScriptedOms(harness, execution_id=second).pump()
    harness.publish_proposal(later)
    command_id = harness.create("later-key", later["proposal_id"], later["version_no"])
    third = execution_id_for_key("later-key")

    new = start_stack(harness, evolved, "new")
    # From here on the test reads (and its OMS writes) the next version too, as an upgraded adapter would.
    monkeypatch.setattr(testkit.processor, "serde", CodecsAsSerde(serde.Codecs(evolved)))
    try:
        client = Client(new.gateway_url)
        result = harness.result(command_id)
        assert result["outcome"] == "CREATED", result["problem"]
        body = wait_execution(client, first, lambda b: b["status"] == "FILLED", "the filled execution")
        assert all(ticket["status"] == "FILLED" for ticket in body["tickets"])
        wait_execution(client, second, lambda b: any(t["status"] == "FILLED" for t in b["tickets"]),
                       "order events of the previous version folded")
        wait_execution(client, third, lambda b: b["status"] == "SUBMITTED", "the command of the previous version")
        listed = client.get("/rebalance/executions", params={"limit": 50}).json()
        assert {first, second, third} <= {item["execution_id"] for item in listed["items"]}

        ScriptedOms(harness, execution_id=third).run_until(lambda: harness.latest_status(third) == "FILLED", 60)
        wait_execution(client, third, lambda b: b["status"] == "FILLED", "the new execution filled")
    finally:
        new.stop()
    assert dead_letters(harness, serde.Codecs(evolved)) == []


def test_upgrade_rollback_readers_of_the_current_version_serve_records_of_the_next_one_released_ahead(
        harness: ProcessorHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    evolved = evolved_schema_dir(tmp_path / "next", full=True)  # FULL-compatible changes only
    ahead = ahead_schema_dir(tmp_path / "ahead", evolved)
    next_version = CodecsAsSerde(serde.Codecs(evolved))
    monkeypatch.setattr(testkit.processor, "serde", next_version)  # the test's producers write the next version
    proposal = unique_proposal("rfc_accept_all", "rollback")

    new = start_stack(harness, evolved, "new")
    client = Client(new.gateway_url)
    harness.publish_proposal(proposal)
    execution_id = create(client, proposal, "rollback")
    wait_until(lambda: harness.instructions(execution_id), what="the first tickets")
    new.stop()

    oms = ScriptedOms(harness, execution_id=execution_id)
    oms.pump()  # order events of the next version, written while the rollback happens
    old = start_stack(harness, ahead, "rolled-back")
    try:
        client = Client(old.gateway_url)
        wait_execution(client, execution_id, lambda b: any(t["status"] == "FILLED" for t in b["tickets"]),
                       "next-version state changes and order events read by current-version readers")
        oms.run_until(lambda: harness.latest_status(execution_id) == "FILLED", 60)
        wait_execution(client, execution_id, lambda b: b["status"] == "FILLED", "the execution filled")
    finally:
        old.stop()
    assert serde.codec("OrderEvent").fingerprint != serde.Codecs(evolved).codec("OrderEvent").fingerprint
    assert dead_letters(harness, serde.Codecs(evolved)) == []
