from __future__ import annotations

import pytest

from execution_domain.policy import CriticalSells, ExecutionPolicy, OnCriticalRejection, PartialFunding
from execution_domain.request import Actor, RequestOrigin, execution_id_for_key, request_hash
from testkit.domain import policy_of

ACTOR = Actor("advisor_001", "ADVISOR_APP")


def test_request_hash_is_prefixed_sha256_hex() -> None:
    value = request_hash("prop_123", 2, policy_of(max_slippage_bps="25"), ACTOR)
    assert value.startswith("sha256:") and len(value) == 71
    assert all(c in "0123456789abcdef" for c in value[7:])


def test_request_hash_is_the_same_for_bodies_that_mean_the_same() -> None:
    spelled_out = ExecutionPolicy.model_validate(
        {"max_slippage_bps": "25.00", "time_in_force": "DAY", "dry_run": False, "allow_partial_fills": True}
    )
    minimal = ExecutionPolicy.model_validate({"max_slippage_bps": "25"})
    assert request_hash("prop_123", 2, spelled_out, ACTOR) == request_hash("prop_123", 2, minimal, ACTOR)


def test_request_hash_changes_with_any_part_of_the_body() -> None:
    policy = policy_of(max_slippage_bps="25")
    base = request_hash("prop_123", 2, policy, ACTOR)
    assert base != request_hash("prop_124", 2, policy, ACTOR)
    assert base != request_hash("prop_123", 3, policy, ACTOR)
    assert base != request_hash("prop_123", 2, policy_of(max_slippage_bps="30"), ACTOR)
    assert base != request_hash("prop_123", 2, policy, Actor("advisor_002", "ADVISOR_APP"))


def test_request_hash_of_an_inline_artifact_request_depends_on_the_artifact_hash() -> None:
    policy = policy_of(max_slippage_bps="25")
    stored = request_hash("prop_123", 2, policy, ACTOR)
    inline_a = request_hash("prop_123", 2, policy, ACTOR, inline_artifact_hash="sha256:" + "a" * 64)
    inline_b = request_hash("prop_123", 2, policy, ACTOR, inline_artifact_hash="sha256:" + "b" * 64)
    assert len({stored, inline_a, inline_b}) == 3


def test_request_origin_round_trips() -> None:
    origin = RequestOrigin(ACTOR, idempotency_key="k1", correlation_id=None)
    assert RequestOrigin.from_primitive(origin.to_primitive()) == origin


def test_execution_id_is_a_stable_function_of_the_idempotency_key() -> None:
    assert execution_id_for_key("key-1") == execution_id_for_key("key-1")
    assert execution_id_for_key("key-1") != execution_id_for_key("key-2")
    assert execution_id_for_key("key-1").startswith("exec_") and len(execution_id_for_key("key-1")) == 29


# Computed by the release before on_critical_rejection existed: a retry across the upgrade must
# hash the same (a replay, not a 409 conflict).
PINNED = [
    (policy_of(max_slippage_bps="25"), None,
     "sha256:b8c4fafbd22bd7e6b480465889c0a246aeabe50a332a56a02819174263c9c44a"),
    (policy_of(max_slippage_bps="12.5", time_in_force="IOC", dry_run=True, critical_sells=CriticalSells.ALL,
                     partial_funding=PartialFunding.CANCEL, allow_partial_fills=False), "sha256:" + "a" * 64,
     "sha256:39572b19b61fdf586a1d746bc1cc1023b95466ce94bf4c625fd7563aee93a385"),
]


@pytest.mark.parametrize(("policy", "inline", "expected"), PINNED)
def test_request_hash_of_a_request_from_before_on_critical_rejection_is_unchanged(
    policy: ExecutionPolicy, inline: str | None, expected: str
) -> None:
    assert request_hash("prop_123", 2, policy, ACTOR, inline_artifact_hash=inline) == expected


def test_request_hash_counts_on_critical_rejection_only_when_it_is_not_the_default() -> None:
    omitted = policy_of(max_slippage_bps="25")
    spelled = policy_of(max_slippage_bps="25", on_critical_rejection=OnCriticalRejection.CANCEL_REMAINING)
    let_run = policy_of(max_slippage_bps="25", on_critical_rejection=OnCriticalRejection.LET_RUN)
    assert request_hash("prop_123", 2, omitted, ACTOR) == request_hash("prop_123", 2, spelled, ACTOR)
    assert request_hash("prop_123", 2, let_run, ACTOR) != request_hash("prop_123", 2, omitted, ACTOR)
    assert omitted.to_primitive()["on_critical_rejection"] == "CANCEL_REMAINING"  # stored explicitly all the same
