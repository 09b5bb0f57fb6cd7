"""POST /rebalance/executions and /cancel without Kafka: header and body validation, the command
the gateway publishes, and the HTTP answer for every processor outcome (fake backend)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict

from execution_domain import Actor, ExecutionPolicy, execution_id_for_key, request_hash
from execution_domain.proposal import seal_artifact
from gateway.app import create_app
from gateway.auth import token_fingerprint
from gateway.models import CancelAccepted, CommandPending, Execution
from testkit.gateway_fakes import (
    ADVISOR_TOKEN,
    AUTH,
    INLINE_TOKEN,
    READER_TOKEN,
    TOKEN,
    FakeBackend,
    assert_problem,
    bearer,
    config,
    run,
    state_change,
)

BODY = {
    "proposal_id": "prop_123",
    "version_no": 2,
    "execution_policy": {"max_slippage_bps": "25"},
    "actor": {"requested_by": "advisor_001", "channel": "ADVISOR_APP"},
}


def sample_artifact() -> dict[str, Any]:
    from testkit.processor import load_sample
    return load_sample("rfc_accept_all")


def created(command: dict[str, Any], outcome: str = "CREATED") -> dict[str, Any]:
    record = state_change(command["execution_id"], status="SUBMITTED")["execution"]
    return {"outcome": outcome, "execution_id": command["execution_id"], "execution": record}


def post(body: Any, answer: Any = None, *, headers: dict[str, str] | None = None, backend: FakeBackend | None = None,
         token: str = TOKEN, **options: Any) -> tuple[int, dict[str, Any], dict[str, str], FakeBackend]:
    backend = backend or FakeBackend(answer)

    async def scenario(client: TestClient) -> tuple[int, dict[str, Any], dict[str, str]]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = await client.post("/rebalance/executions", data=data,
                                     headers={**bearer(token), "Content-Type": "application/json", **(headers or {})})
        return response.status, await response.json(content_type=None), CIMultiDict(response.headers)

    status, payload, response_headers = run(create_app(config(**options), backend=backend), scenario)
    return status, payload, response_headers, backend


KEY = {"Idempotency-Key": "key-0001"}


def test_created_is_201_with_the_rfc_body_location_and_the_derived_execution_id() -> None:
    status, body, headers, backend = post(BODY, created, headers=KEY)
    assert status == 201
    Execution.model_validate(body)
    execution_id = execution_id_for_key("key-0001")
    assert body["execution_id"] == execution_id
    assert {"execution_id", "proposal_id", "version_no", "status", "tickets", "lineage"} <= body.keys()
    assert body["lineage"]["request_hash"].startswith("sha256:")
    assert headers["Location"] == f"/rebalance/executions/{execution_id}"


def test_replay_is_200_with_the_same_body() -> None:
    status, body, _, _ = post(BODY, lambda c: created(c, "REPLAYED"), headers=KEY)
    assert status == 200
    Execution.model_validate(body)


def test_create_publishes_one_command_keyed_by_execution_id_with_hash_key_and_correlation_id() -> None:
    _, _, headers, backend = post(BODY, created, headers={**KEY, "X-Correlation-Id": "corr-create-1"})
    [(topic, key, command, correlation_id)] = backend.publisher.published
    execution_id = execution_id_for_key("key-0001")
    assert topic == config().topics.execution_commands
    assert key == execution_id == command["execution_id"]
    assert correlation_id == command["correlation_id"] == headers["X-Correlation-Id"] == "corr-create-1"
    assert command["command_type"] == "CREATE_EXECUTION"
    payload = command["payload"]
    assert payload["idempotency_key"] == "key-0001"
    assert payload["artifact"] is None
    policy = ExecutionPolicy(max_slippage_bps="25")
    assert payload["request_hash"] == request_hash("prop_123", 2, policy, Actor(
        token_fingerprint(TOKEN), "ADVISOR_APP", claimed_requested_by="advisor_001"))


def test_equivalent_bodies_hash_alike() -> None:
    spelled = {**BODY, "execution_policy": {"max_slippage_bps": "25.0", "time_in_force": "DAY", "dry_run": False}}
    first = post(BODY, created, headers=KEY)[3].publisher.published[0][2]["payload"]["request_hash"]
    second = post(spelled, created, headers=KEY)[3].publisher.published[0][2]["payload"]["request_hash"]
    assert first == second


@pytest.mark.parametrize(("headers", "slug"), [
    ({}, "idempotency-key-missing"),
    ({"Idempotency-Key": ""}, "idempotency-key-missing"),
    ({"Idempotency-Key": "   "}, "idempotency-key-missing"),
    ({"Idempotency-Key": "k" * 256}, "idempotency-key-invalid"),
    ({"Idempotency-Key": "has space"}, "idempotency-key-invalid"),
    ({"Idempotency-Key": "caf\u00e9"}, "idempotency-key-invalid"),
])
def test_missing_empty_or_oversized_idempotency_key_is_400_and_publishes_nothing(headers: dict[str, str],
                                                                                   slug: str) -> None:
    status, body, _, backend = post(BODY, created, headers=headers)
    assert status == 400
    assert_problem(400, body, slug)
    assert backend.publisher.published == []


def test_longest_idempotency_key_is_accepted() -> None:
    assert post(BODY, created, headers={"Idempotency-Key": "k" * 255})[0] == 201


def test_body_that_is_not_json_is_400() -> None:
    status, body, _, backend = post(b"{not json", created, headers=KEY)
    assert status == 400
    assert_problem(400, body, "malformed-request")
    assert backend.publisher.published == []


@pytest.mark.parametrize(("change", "path"), [
    ({"version_no": "2"}, "version_no"),
    ({"version_no": 0}, "version_no"),
    ({"proposal_id": ""}, "proposal_id"),
    ({"execution_policy": {"max_slippage_bps": 25.5}}, "execution_policy.max_slippage_bps"),
    ({"execution_policy": {"max_slippage_bps": "-1"}}, "execution_policy.max_slippage_bps"),
    ({"execution_policy": {"max_slippage_bps": "1e3"}}, "execution_policy.max_slippage_bps"),
    ({"execution_policy": {}}, "execution_policy.max_slippage_bps"),
    ({"execution_policy": {"max_slippage_bps": "25", "time_in_force": "FOREVER"}}, "execution_policy.time_in_force"),
    ({"execution_policy": {"max_slippage_bps": "25", "dry_run": "yes"}}, "execution_policy.dry_run"),
    ({"actor": {"requested_by": "a"}}, "actor.channel"),
    ({"surprise": 1}, "surprise"),
])
def test_invalid_body_is_422_with_every_problem_located(change: dict[str, Any], path: str) -> None:
    status, body, _, backend = post({**BODY, **change}, created, headers=KEY)
    assert status == 422
    assert_problem(422, body, "validation-failed")
    assert path in [error["path"] for error in body["errors"]]
    assert backend.publisher.published == []


INLINE = {"token": INLINE_TOKEN, "inline_artifacts": True}  # a principal allowed inline artifacts, feature on


def test_inline_artifact_is_validated_and_carried_in_the_command() -> None:
    artifact = sample_artifact()
    status, _, _, backend = post({**BODY, "artifact": artifact}, created, headers=KEY, **INLINE)
    assert status == 201
    payload = backend.publisher.published[0][2]["payload"]
    assert payload["artifact"]["proposal_version_hash"] == artifact["proposal_version_hash"]
    policy = ExecutionPolicy(max_slippage_bps="25")
    actor = Actor("proposal-tool", "ADVISOR_APP", claimed_requested_by="advisor_001")
    assert payload["request_hash"] == request_hash("prop_123", 2, policy, actor,
                                                   inline_artifact_hash=artifact["proposal_version_hash"])


def test_inline_artifact_with_a_wrong_hash_is_422_listing_the_problem() -> None:
    artifact = sample_artifact()
    artifact["trades_and_funding"]["intents"][0]["quantity"] = "101"
    status, body, _, backend = post({**BODY, "artifact": artifact}, created, headers=KEY, **INLINE)
    assert status == 422
    assert_problem(422, body, "invalid-artifact")
    assert [e["code"] for e in body["errors"]] == ["HASH_MISMATCH"]
    assert body["errors"][0]["path"] == "artifact.proposal_version_hash"
    assert backend.publisher.published == []


def test_inline_artifact_of_another_proposal_is_422() -> None:
    artifact = seal_artifact({**sample_artifact(), "proposal_id": "prop_other"})
    status, body, _, _ = post({**BODY, "artifact": artifact}, created, headers=KEY, **INLINE)
    assert status == 422
    assert_problem(422, body, "invalid-artifact")


def _problem_answer(outcome: str, title: str, existing: str | None = None, same_key: bool = False) -> Any:
    def answer(command: dict[str, Any]) -> dict[str, Any]:
        return {"outcome": outcome, "existing_execution_id": command["execution_id"] if same_key else existing,
                "problem": {"title": title, "detail": f"detail of {outcome}"}}
    return answer


@pytest.mark.parametrize(("answer", "status", "slug", "existing"), [
    (_problem_answer("CONFLICT", "Idempotency key reused", same_key=True), 409, "idempotency-key-conflict", "same"),
    (_problem_answer("CONFLICT", "Proposal version already being executed", "exec_other"), 409,
     "proposal-version-in-use", "exec_other"),
    (_problem_answer("NOT_FOUND", "Proposal version not found"), 404, "proposal-not-found", None),
    (_problem_answer("NOT_EXECUTABLE", "Proposal version is not executable"), 422, "proposal-not-executable", None),
    (_problem_answer("INVALID", "Invalid proposal artifact"), 422, "invalid-artifact", None),
    (_problem_answer("INVALID", "Invalid execution request"), 422, "invalid-request", None),
    (_problem_answer("FAILED", "boom"), 500, "command-failed", None),
])
def test_processor_outcomes_map_to_problem_statuses(answer: Any, status: int, slug: str, existing: str | None) -> None:
    got, body, _, _ = post(BODY, answer, headers=KEY)
    assert got == status
    assert_problem(status, body, slug)
    if existing == "same":
        assert body["existing_execution_id"] == execution_id_for_key("key-0001")
    elif existing is not None:
        assert body["existing_execution_id"] == existing
    assert body["detail"].startswith("detail of")


def test_no_answer_within_the_bound_is_202_with_a_location_to_poll() -> None:
    status, body, headers, backend = post(BODY, lambda command: None, headers=KEY, result_timeout_s=0.2)
    execution_id = execution_id_for_key("key-0001")
    assert status == 202
    CommandPending.model_validate(body)
    assert body["execution_id"] == execution_id
    assert headers["Location"] == f"/rebalance/executions/{execution_id}"
    assert backend.results.futures == {}  # the waiter was dropped


def test_kafka_refusing_the_command_is_503_with_retry_after() -> None:
    backend = FakeBackend(created)
    backend.publisher.fail = True
    status, body, headers, _ = post(BODY, backend=backend, headers=KEY)
    assert status == 503
    assert_problem(503, body, "service-unavailable")
    assert headers["Retry-After"] == "1"


def test_create_before_the_results_consumer_is_ready_is_503() -> None:
    backend = FakeBackend(created)
    backend.results.ready = False
    status, body, _, _ = post(BODY, backend=backend, headers=KEY)
    assert status == 503 and backend.publisher.published == []


# -- cancel ---------------------------------------------------------------------------------------

CANCEL = {"actor": {"requested_by": "advisor_001", "channel": "ADVISOR_APP"}, "reason": "client withdrew"}


def cancel(answer: Any, known: bool = True, body: Any = CANCEL, token: str = TOKEN,
           **options: Any) -> tuple[int, dict[str, Any], FakeBackend]:
    backend = FakeBackend(answer)
    if known:
        backend.read_model.apply(state_change("exec_c1"))

    async def scenario(client: TestClient) -> tuple[int, dict[str, Any]]:
        response = await client.post("/rebalance/executions/exec_c1/cancel", json=body, headers=bearer(token))
        return response.status, await response.json(content_type=None)

    status, payload = run(create_app(config(**options), backend=backend), scenario)
    return status, payload, backend


def test_cancel_accepted_is_202_with_the_execution() -> None:
    status, body, backend = cancel(lambda c: {**created(c), "outcome": "CANCEL_ACCEPTED"})
    assert status == 202
    CancelAccepted.model_validate(body)
    assert body["cancel"] == "ACCEPTED" and body["execution"]["execution_id"] == "exec_c1"
    [(_, key, command, _)] = backend.publisher.published
    assert (key, command["command_type"], command["payload"]["reason"]) == ("exec_c1", "CANCEL_EXECUTION",
                                                                            "client withdrew")


def test_cancel_rejected_is_409() -> None:
    status, body, _ = cancel(_problem_answer("CANCEL_REJECTED", "Nothing to cancel"))
    assert status == 409
    assert_problem(409, body, "cancel-rejected")


def test_cancel_of_an_unknown_execution_is_404_and_publishes_nothing() -> None:
    status, body, backend = cancel(created, known=False)
    assert status == 404
    assert_problem(404, body, "execution-not-found")
    assert backend.publisher.published == []


def test_cancel_not_answered_in_time_is_202_pending() -> None:
    status, body, _ = cancel(lambda c: None, result_timeout_s=0.2)
    assert status == 202
    CancelAccepted.model_validate(body)
    assert body["cancel"] == "PENDING" and body["execution"] is None


def test_cancel_needs_an_actor() -> None:
    status, body, _ = cancel(created, body={"reason": "x"})
    assert status == 422
    assert_problem(422, body, "validation-failed")


def test_inline_artifact_with_an_out_of_range_timestamp_is_422_not_500() -> None:
    artifact = {**sample_artifact(), "created_at": "9999-12-31T23:59:59-23:59"}
    status, body, _, _ = post({**BODY, "artifact": artifact}, created, headers=KEY, **INLINE)
    assert status == 422
    assert_problem(422, body, "validation-failed")


# -- principals, scopes and inline artifacts ------------------------------------------------------


def test_create_records_the_tokens_principal_as_requested_by_not_the_clients_claim(
        caplog: pytest.LogCaptureFixture) -> None:
    from gateway.logging_context import CorrelationIdFilter

    claimed = {**BODY, "actor": {"requested_by": "ceo_of_the_bank", "channel": "ADVISOR_APP"}}
    caplog.handler.addFilter(CorrelationIdFilter())
    with caplog.at_level("INFO"):
        status, _, _, backend = post(claimed, created, headers=KEY, token=ADVISOR_TOKEN)
    assert status == 201
    payload = backend.publisher.published[0][2]["payload"]
    # The claim is recorded beside the real principal, never in its place (and logged).
    assert payload["actor"] == {"requested_by": "advisor-7", "channel": "ADVISOR_APP",
                                "claimed_requested_by": "ceo_of_the_bank"}
    policy = ExecutionPolicy(max_slippage_bps="25")
    assert payload["request_hash"] == request_hash(
        "prop_123", 2, policy, Actor("advisor-7", "ADVISOR_APP", claimed_requested_by="ceo_of_the_bank"))
    [line] = [r for r in caplog.records if r.getMessage() == "create execution"]
    assert line.claimed_requested_by == "ceo_of_the_bank"
    assert line.principal == "advisor-7"


def test_create_without_requested_by_is_accepted() -> None:
    status, _, _, backend = post({**BODY, "actor": {"channel": "ADVISOR_APP"}}, created, headers=KEY,
                                 token=ADVISOR_TOKEN)
    assert status == 201
    assert backend.publisher.published[0][2]["payload"]["actor"]["requested_by"] == "advisor-7"


def test_the_same_key_from_two_principals_is_two_different_requests() -> None:
    hashes = [post(BODY, created, headers=KEY, token=token)[3].publisher.published[0][2]["payload"]["request_hash"]
              for token in (TOKEN, ADVISOR_TOKEN)]
    assert hashes[0] != hashes[1]  # so the processor answers the second one 409, never a replay


@pytest.mark.parametrize("dry_run", [False, True])
def test_inline_artifact_is_403_while_the_gateway_does_not_accept_them(dry_run: bool) -> None:
    body = {**BODY, "execution_policy": {"max_slippage_bps": "25", "dry_run": dry_run}, "artifact": sample_artifact()}
    status, problem, _, backend = post(body, created, headers=KEY, token=INLINE_TOKEN)  # scope, but feature off
    assert status == 403
    assert_problem(403, problem, "inline-artifacts-disabled")
    assert backend.publisher.published == []


@pytest.mark.parametrize("token", [TOKEN, ADVISOR_TOKEN])
def test_inline_artifact_from_a_token_without_the_scope_is_403_and_publishes_nothing(token: str) -> None:
    status, problem, headers, backend = post({**BODY, "artifact": sample_artifact()}, created, headers=KEY,
                                             token=token, inline_artifacts=True)
    assert status == 403
    assert_problem(403, problem, "insufficient-scope")
    assert 'error="insufficient_scope"' in headers["WWW-Authenticate"]
    assert 'scope="artifacts:inline"' in headers["WWW-Authenticate"]
    assert backend.publisher.published == []


def test_read_only_token_may_read_but_not_create_or_cancel() -> None:
    status, problem, headers, backend = post(BODY, created, headers=KEY, token=READER_TOKEN)
    assert status == 403
    assert_problem(403, problem, "insufficient-scope")
    assert 'scope="executions:write"' in headers["WWW-Authenticate"]
    cancelled, _, cancel_backend = cancel(created, token=READER_TOKEN)
    assert cancelled == 403
    assert backend.publisher.published == [] and cancel_backend.publisher.published == []

    async def scenario(client: TestClient) -> list[int]:
        return [(await client.get(path, headers=bearer(READER_TOKEN))).status
                for path in ("/rebalance/executions", "/rebalance/executions/exec_c1", "/openapi.json")]

    backend = FakeBackend()
    backend.read_model.apply(state_change("exec_c1"))
    assert run(create_app(config(), backend=backend), scenario) == [200, 200, 200]


def test_cancel_records_the_tokens_principal() -> None:
    _, _, backend = cancel(lambda c: {**created(c), "outcome": "CANCEL_ACCEPTED"}, token=ADVISOR_TOKEN)
    assert backend.publisher.published[0][2]["payload"]["actor"]["requested_by"] == "advisor-7"


def test_create_body_limit_is_small_unless_the_token_may_send_an_inline_artifact() -> None:
    padded = json.dumps(BODY).encode()[:-1] + b" " * 100_000 + b"}"  # valid JSON of 100 KB
    small, problem, _, _ = post(padded, created, headers=KEY, token=INLINE_TOKEN)  # feature off: small limit
    assert small == 413
    assert_problem(413, problem, "payload-too-large")
    assert post(padded, created, headers=KEY, token=ADVISOR_TOKEN, inline_artifacts=True)[0] == 413
    assert post(padded, created, headers=KEY, **INLINE)[0] == 201


# -- Content-Type ---------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "application/json; charset=latin-1", "application/jsonx"])
def test_create_body_not_declared_as_json_is_415_and_publishes_nothing(content_type: str | None) -> None:
    backend = FakeBackend(created)

    async def scenario(client: TestClient) -> tuple[int, dict[str, Any]]:
        headers = {**AUTH, **KEY}
        if content_type is not None:
            headers["Content-Type"] = content_type
        response = await client.post("/rebalance/executions", data=json.dumps(BODY).encode(),
                                     headers=headers, skip_auto_headers=["Content-Type"])
        return response.status, await response.json(content_type=None)

    status, body = run(create_app(config(), backend=backend), scenario)
    assert status == 415
    assert_problem(415, body, "unsupported-media-type")
    assert backend.publisher.published == []


def test_json_with_an_explicit_utf8_charset_is_accepted() -> None:
    assert post(BODY, created, headers={**KEY, "Content-Type": "application/json; charset=UTF-8"})[0] == 201
