"""Create semantics through Kafka: idempotency key + request hash, one live execution per
proposal version, unknown or not-ready proposals, inline artifacts, dry runs, cancel."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest
from confluent_kafka import Producer

from execution_domain import execution_id_for_key, parse_artifact
from execution_domain.proposal import seal_artifact
from mock_oms.provider import MockHold
from testkit.processor import ProcessorHarness, ProcessorProcess, ScriptedOms, load_sample, wait_until
from wire import records as translate
from wire import serde

pytestmark = pytest.mark.integration


@pytest.fixture
def running(harness: ProcessorHarness) -> ProcessorHarness:
    harness.start()
    return harness


def test_replay_with_same_key_and_body_returns_the_execution_and_releases_nothing_twice(running: ProcessorHarness) -> None:
    raw = load_sample("rfc_accept_all")
    running.publish_proposal(raw)
    first = running.result(running.create("k-replay", raw["proposal_id"], raw["version_no"]))
    released_after_first = len(running.instructions(first["execution_id"]))

    replay = running.result(running.create("k-replay", raw["proposal_id"], raw["version_no"]))
    running.outputs.drain(0.5)

    assert (first["outcome"], replay["outcome"]) == ("CREATED", "REPLAYED")
    assert replay["execution_id"] == first["execution_id"]
    assert replay["execution"]["tickets"] == first["execution"]["tickets"]
    assert len(running.instructions(first["execution_id"])) == released_after_first


def test_same_key_with_a_different_body_is_a_conflict_naming_the_execution(running: ProcessorHarness) -> None:
    raw = load_sample("rfc_accept_all")
    running.publish_proposal(raw)
    first = running.result(running.create("k-conflict", raw["proposal_id"], raw["version_no"]))
    conflict = running.result(running.create("k-conflict", raw["proposal_id"], raw["version_no"],
                                              policy={"max_slippage_bps": "50"}))
    assert conflict["outcome"] == "CONFLICT"
    assert conflict["existing_execution_id"] == first["execution_id"]
    assert "Idempotency key" in conflict["problem"]["title"]


def test_concurrent_creates_with_one_key_make_one_execution_and_answer_each(running: ProcessorHarness) -> None:
    raw = load_sample("sgd_multi_currency")
    running.publish_proposal(raw)
    command_ids = [running.create("k-burst", raw["proposal_id"], raw["version_no"]) for _ in range(10)]
    results = [running.result(command_id) for command_id in command_ids]
    assert sorted(r["outcome"] for r in results) == ["CREATED"] + ["REPLAYED"] * 9
    assert len({r["execution_id"] for r in results}) == 1


def test_second_live_execution_of_a_version_under_another_key_is_a_conflict(running: ProcessorHarness) -> None:
    raw = load_sample("rfc_accept_all")
    running.publish_proposal(raw)
    first = running.result(running.create("k-live-1", raw["proposal_id"], raw["version_no"]))
    second = running.result(running.create("k-live-2", raw["proposal_id"], raw["version_no"]))
    assert second["outcome"] == "CONFLICT"
    assert second["existing_execution_id"] == first["execution_id"]


def test_version_may_be_executed_again_once_its_execution_was_cancelled(running: ProcessorHarness) -> None:
    raw = load_sample("rfc_accept_all")
    running.publish_proposal(raw)
    oms = ScriptedOms(running)
    first = running.result(running.create("k-again-1", raw["proposal_id"], raw["version_no"]))
    for instruction in running.instructions(first["execution_id"]):
        oms.provider.script(instruction["ticket"]["ticket_id"], MockHold())
    oms.pump()
    cancelled = running.result(running.cancel(first["execution_id"]))
    assert cancelled["outcome"] == "CANCEL_ACCEPTED"
    oms.run_until(lambda: running.latest_status(first["execution_id"]) == "CANCELLED")

    again = running.result(running.create("k-again-2", raw["proposal_id"], raw["version_no"]))
    assert again["outcome"] == "CREATED"


def test_unknown_proposal_version_is_not_found(running: ProcessorHarness) -> None:
    result = running.result(running.create("k-unknown", "prop_does_not_exist", 1))
    assert result["outcome"] == "NOT_FOUND" and "not known" in result["problem"]["detail"]


def test_create_answered_not_found_succeeds_with_the_same_key_once_the_version_is_published(
        running: ProcessorHarness) -> None:
    # docs/design.md, "Known limit": a NOT_FOUND holds nothing and uses up no Idempotency-Key.
    raw = copy.deepcopy(load_sample("rfc_accept_all"))
    raw["proposal_id"] = "prop_published_late"
    raw = seal_artifact(raw)
    early = running.result(running.create("k-late", raw["proposal_id"], raw["version_no"]))
    assert early["outcome"] == "NOT_FOUND"
    running.publish_proposal(raw)
    again = running.result(running.create("k-late", raw["proposal_id"], raw["version_no"]))
    assert again["outcome"] == "CREATED" and again["execution_id"] == execution_id_for_key("k-late")


def _open_upstream_transaction(harness: ProcessorHarness, raw: dict[str, Any]) -> Producer:
    """Another version of `raw`'s proposal (same key, same partition) in a transaction left open:
    nothing written after it on the partition is readable (read_committed) until it ends."""
    blocker = Producer({"bootstrap.servers": harness.bootstrap, "transactional.id": f"upstream-{uuid.uuid4().hex}",
                        "partitioner": "murmur2_random"})
    blocker.init_transactions(30)
    blocker.begin_transaction()
    other = copy.deepcopy(raw)
    other["version_no"] = raw["version_no"] + 1
    record = translate.artifact_to_record(parse_artifact(seal_artifact(other)))
    blocker.produce(harness.topics.approved_proposals, key=other["proposal_id"].encode(),
                    value=serde.encode("ApprovedProposal", record))
    blocker.flush(30)
    return blocker


def _waits(process: ProcessorProcess) -> None:
    wait_until(lambda: "admission waits for approved-proposals to be read" in process.log_path.read_text(
        errors="replace"), 60, what="the admission to wait for its proposal's partition")


def test_create_for_a_version_written_but_not_yet_readable_waits_for_it_and_is_created(
        harness: ProcessorHarness) -> None:
    # processor.admission, "Waiting for the proposal's partition". The version is written before
    # the create, but behind another producer's open transaction on its partition, so the
    # proposals task cannot read it yet (read_committed) when the admission request arrives: the
    # request waits (before: NOT_FOUND at once) and is admitted once the transaction ends.
    target = copy.deepcopy(load_sample("rfc_accept_all"))
    target["proposal_id"] = f"prop_behind_{uuid.uuid4().hex[:6]}"
    target = seal_artifact(target)
    blocker = _open_upstream_transaction(harness, target)
    harness.publish_proposal(target, wait_stored=False)  # written after the open transaction's record
    key = f"k-{target['proposal_id']}"
    command_id = harness.create(key, target["proposal_id"], target["version_no"])

    process = harness.spawn("p1")
    _waits(process)
    harness.outputs.drain(0.5)
    assert not any(r["command_id"] == command_id for r in harness.outputs.records[harness.topics.command_results])

    blocker.abort_transaction(30)  # the partition becomes readable past it: the version is read
    result = harness.result(command_id, timeout_s=60)

    assert result["outcome"] == "CREATED", result
    assert result["execution_id"] == execution_id_for_key(key)


@pytest.mark.parametrize("ends", ["commit", "abort"])
def test_create_for_an_unknown_version_behind_an_open_transaction_is_not_found_once_it_ends(
        harness: ProcessorHarness, ends: str) -> None:
    # The request waits while the partition holds records it cannot read; once the transaction
    # ends, the partition is read to the end it had (the end-of-partition event reports the high
    # watermark, past the transaction's marker) and the answer is NOT_FOUND at once, long before
    # WAIT_AT_MOST_S (30 s) would have decided it: the result is awaited 20 s at most.
    unknown = copy.deepcopy(load_sample("rfc_accept_all"))
    unknown["proposal_id"] = f"prop_unknown_{uuid.uuid4().hex[:6]}"
    blocker = _open_upstream_transaction(harness, seal_artifact(unknown))  # another version, never this one
    command_id = harness.create(f"k-{unknown['proposal_id']}", unknown["proposal_id"], unknown["version_no"])

    process = harness.spawn("p1")
    _waits(process)
    if ends == "commit":
        blocker.commit_transaction(30)
    else:
        blocker.abort_transaction(30)
    result = harness.result(command_id, timeout_s=20)

    assert result["outcome"] == "NOT_FOUND", result


def test_proposal_whose_gate_is_not_execution_ready_is_not_executable(running: ProcessorHarness) -> None:
    raw = copy.deepcopy(load_sample("rfc_accept_all"))
    raw["proposal_id"] = "prop_blocked"
    raw["gate_decision"] = {"decision": "BLOCKED", "reasons": [{"code": "KYC_EXPIRED", "message": "KYC expired"}],
                            "decided_at": raw["gate_decision"]["decided_at"]}
    raw = seal_artifact(raw)
    running.publish_proposal(raw)
    result = running.result(running.create("k-blocked", "prop_blocked", raw["version_no"]))
    assert result["outcome"] == "NOT_EXECUTABLE" and "KYC_EXPIRED" in result["problem"]["detail"]


def test_inline_artifact_is_executed_without_a_stored_version(running: ProcessorHarness) -> None:
    raw = load_sample("usd_cash_flow_eur")
    result = running.result(running.create("k-inline", raw["proposal_id"], raw["version_no"], inline_artifact=raw))
    assert result["outcome"] == "CREATED"
    assert result["execution"]["proposal_version_hash"] == raw["proposal_version_hash"]
    replay = running.result(running.create("k-inline", raw["proposal_id"], raw["version_no"], inline_artifact=raw))
    assert replay["outcome"] == "REPLAYED"


def test_dry_run_returns_every_ticket_and_releases_none(running: ProcessorHarness) -> None:
    raw = load_sample("sgd_multi_currency")
    running.publish_proposal(raw)
    result = running.result(running.create("k-dry", raw["proposal_id"], raw["version_no"], policy={"dry_run": True}))
    running.outputs.drain(0.5)
    assert result["outcome"] == "CREATED"
    assert len(result["execution"]["tickets"]) == len(raw["trades_and_funding"]["intents"])
    assert not any(t["released"] for t in result["execution"]["tickets"])
    assert running.instructions(result["execution_id"]) == []
    # A dry run holds no version: a real execution may follow.
    real = running.result(running.create("k-dry-real", raw["proposal_id"], raw["version_no"]))
    assert real["outcome"] == "CREATED"


def test_cancel_of_an_unknown_execution_is_not_found(running: ProcessorHarness) -> None:
    assert running.result(running.cancel("exec_nope"))["outcome"] == "NOT_FOUND"
