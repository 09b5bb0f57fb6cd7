"""Bad input never stops the processor and is never silently dropped: each kind of poison
record lands in the dead-letter topic with its reason and original bytes, and the rest of the
stream is processed."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from execution_domain import EventDetails, OrderEvent, OrderEventType, parse_artifact
from execution_domain.proposal import seal_artifact
from testkit.processor import ProcessorHarness, ScriptedOms, load_sample, wait_until
from wire import records as translate
from wire import serde

pytestmark = pytest.mark.integration


def test_poison_records_are_dead_lettered_with_reasons_while_the_stream_goes_on(harness: ProcessorHarness) -> None:
    harness.start()
    t = harness.topics
    good = load_sample("rfc_accept_all")
    harness.publish_proposal(good)

    tampered_record = translate.artifact_to_record(parse_artifact(good))
    tampered_record["portfolio_id"] = "pf_tampered"  # content no longer matches its hash
    changed_version = seal_artifact({**copy.deepcopy(good), "portfolio_id": "pf_other"})  # same id+version, new hash
    stray_event = OrderEvent("ev-stray", "exec_unknown", "tkt_000000000000", "OMS_X", OrderEventType.ORDER_ACCEPTED,
                             "OMS-1", datetime(2026, 2, 18, 10, tzinfo=UTC), EventDetails())

    # (topic, value, expected error type); keyed like their producers key them
    poison = [
        (t.approved_proposals, b"not avro at all", "DecodeError"),
        (t.approved_proposals, serde.encode("ApprovedProposal", tampered_record), "ArtifactInvalid"),
        (t.approved_proposals, serde.encode("ApprovedProposal", translate.artifact_to_record(
            parse_artifact(changed_version))), "ImmutableVersionViolation"),
        (t.execution_commands, serde.encode("OrderEvent", translate.order_event_to_record(stray_event)), "DecodeError"),
        (t.execution_commands, None, "DecodeError"),
        (t.order_events, b"\xc3\x01" + b"\x00" * 8, "DecodeError"),
        (t.order_events, serde.encode("OrderEvent", translate.order_event_to_record(stray_event)), "UnknownExecution"),
    ]
    for topic, value, _ in poison:
        # Proposals are keyed by proposal_id: the changed version must meet the stored one.
        harness.produce(topic, good["proposal_id"] if topic == t.approved_proposals else "poison-key", value)

    # The good stream after the poison is processed in full.
    result = harness.result(harness.create("k-after-poison", good["proposal_id"], good["version_no"]))
    assert result["outcome"] == "CREATED"
    ScriptedOms(harness).run_until(lambda: harness.latest_status(result["execution_id"]) == "FILLED")

    letters = wait_until(lambda: len(harness.dead_letters()) == len(poison) and harness.dead_letters(),
                         what="every poison record dead-lettered")
    # Inputs on different partitions are folded in no fixed order: match letters to records.
    by_value = {(d["original_topic"], d["original_value"]): d for d in letters}
    assert len(by_value) == len(poison)
    for topic, value, kind in poison:
        letter = by_value[(topic, value)]
        assert letter["error_type"] == kind
        assert letter["original_key"] == (good["proposal_id"].encode() if topic == t.approved_proposals else b"poison-key")
        assert letter["reason"]
    reasons = {d["error_type"]: d["reason"] for d in letters}
    assert "HASH_MISMATCH" in reasons["ArtifactInvalid"]
    assert "immutable" in reasons["ImmutableVersionViolation"]
    assert "exec_unknown" in reasons["UnknownExecution"]
    assert any("written with schema OrderEvent" in d["reason"] for d in letters)
    # The headers say where it came from, for tools that do not decode the value.
    raw = next(m for m in harness.outputs.raw[t.dead_letters] if dict(m.headers())["dlt.error.type"] == b"UnknownExecution")
    headers = dict(raw.headers())
    assert headers["dlt.original.topic"] == t.order_events.encode()
    assert int(headers["dlt.original.offset"]) >= 0
