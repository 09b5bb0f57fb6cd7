from __future__ import annotations

from execution_domain.policy import ExecutionPolicy
from execution_domain.request import Actor, RequestOrigin, execution_id_for_key, request_hash

ACTOR = Actor("advisor_001", "ADVISOR_APP")


def test_request_hash_is_prefixed_sha256_hex() -> None:
    value = request_hash("prop_123", 2, ExecutionPolicy(max_slippage_bps="25"), ACTOR)
    assert value.startswith("sha256:") and len(value) == 71
    assert all(c in "0123456789abcdef" for c in value[7:])


def test_request_hash_is_the_same_for_bodies_that_mean_the_same() -> None:
    spelled_out = ExecutionPolicy.model_validate(
        {"max_slippage_bps": "25.00", "time_in_force": "DAY", "dry_run": False, "allow_partial_fills": True}
    )
    minimal = ExecutionPolicy.model_validate({"max_slippage_bps": "25"})
    assert request_hash("prop_123", 2, spelled_out, ACTOR) == request_hash("prop_123", 2, minimal, ACTOR)


def test_request_hash_changes_with_any_part_of_the_body() -> None:
    policy = ExecutionPolicy(max_slippage_bps="25")
    base = request_hash("prop_123", 2, policy, ACTOR)
    assert base != request_hash("prop_124", 2, policy, ACTOR)
    assert base != request_hash("prop_123", 3, policy, ACTOR)
    assert base != request_hash("prop_123", 2, ExecutionPolicy(max_slippage_bps="30"), ACTOR)
    assert base != request_hash("prop_123", 2, policy, Actor("advisor_002", "ADVISOR_APP"))


def test_request_hash_of_an_inline_artifact_request_depends_on_the_artifact_hash() -> None:
    policy = ExecutionPolicy(max_slippage_bps="25")
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
