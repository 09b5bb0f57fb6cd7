"""The HTTP edge without Kafka: problem details, correlation ids, bearer auth, metrics, health.
A fake backend stands in for the Kafka clients (tests/gateway/fakes.py)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.auth import BearerAuth, parse_bearer, token_fingerprint
from gateway.problems import PROBLEM_BASE, Problems
from gateway.webhook import signature_header
from testkit.gateway_fakes import (
    ADVISOR_TOKEN,
    AUTH,
    OTHER_TOKEN,
    SECRET,
    TOKEN,
    FakeBackend,
    assert_problem,
    config,
    run,
)


def serve(scenario: Any, backend: FakeBackend | None = None, **options: Any) -> Any:
    return run(create_app(config(**options), backend=backend or FakeBackend()), scenario)


# -- problem details ------------------------------------------------------------------------------


def test_problem_catalogue_has_unique_stable_type_uris() -> None:
    kinds = Problems.all()
    slugs = [kind.slug for kind in kinds]
    assert len(slugs) == len(set(slugs))
    assert all(kind.uri == PROBLEM_BASE + kind.slug and 400 <= kind.status < 600 for kind in kinds)
    assert Problems.IDEMPOTENCY_KEY_CONFLICT.uri == "https://execution-integration/problems/idempotency-key-conflict"


def test_error_is_problem_json_with_type_title_status_instance_and_correlation_id() -> None:
    async def scenario(client: TestClient) -> tuple[int, str, dict[str, Any], str]:
        response = await client.get("/rebalance/executions/exec_unknown", headers=AUTH)
        return response.status, response.content_type, await response.json(content_type=None), \
            response.headers["X-Correlation-Id"]

    status, content_type, body, correlation_id = serve(scenario)
    assert (status, content_type) == (404, "application/problem+json")
    assert_problem(404, body, "execution-not-found")
    assert body["instance"] == "/rebalance/executions/exec_unknown"
    assert body["correlation_id"] == correlation_id
    assert body["title"] == "Execution not found"


def test_unknown_route_and_wrong_method_are_problems() -> None:
    async def scenario(client: TestClient) -> list[tuple[int, dict[str, Any], str | None]]:
        out = []
        for method, path in (("GET", "/nowhere"), ("DELETE", "/rebalance/executions")):
            response = await client.request(method, path, headers=AUTH)
            out.append((response.status, await response.json(content_type=None), response.headers.get("Allow")))
        return out

    (not_found, body_404, _), (not_allowed, body_405, allow) = serve(scenario)
    assert not_found == 404 and not_allowed == 405
    assert_problem(404, body_404, "not-found")
    assert_problem(405, body_405, "method-not-allowed")
    assert allow is not None and "POST" in allow


def test_body_over_the_limit_is_413_problem() -> None:
    async def scenario(client: TestClient) -> tuple[int, dict[str, Any]]:
        response = await client.post("/rebalance/executions", data=b"{" + b" " * 5000 + b"}",
                                     headers={**AUTH, "Idempotency-Key": "k1", "Content-Type": "application/json"})
        return response.status, await response.json(content_type=None)

    status, body = serve(scenario, max_body_bytes=1024)
    assert status == 413
    assert_problem(413, body, "payload-too-large")


def test_unexpected_exception_is_a_500_problem_without_internals(caplog: pytest.LogCaptureFixture) -> None:
    backend = FakeBackend()

    def explode() -> Any:
        raise RuntimeError("secret internals")

    backend.checks = explode  # type: ignore[method-assign]

    async def scenario(client: TestClient) -> tuple[int, dict[str, Any]]:
        response = await client.get("/readyz")
        return response.status, await response.json(content_type=None)

    with caplog.at_level(logging.ERROR):
        status, body = serve(scenario, backend)
    assert status == 500
    assert_problem(500, body, "internal-error")
    assert "secret internals" not in str(body)
    assert "secret internals" in caplog.text  # logged for operators, with the stack


# -- correlation id -------------------------------------------------------------------------------


def test_correlation_id_is_echoed_generated_or_replaced_when_malformed() -> None:
    async def scenario(client: TestClient) -> list[str]:
        ids = []
        for headers in ({"X-Correlation-Id": "corr-abc-123"}, {}, {"X-Correlation-Id": "has space"},
                        {"X-Correlation-Id": "x" * 500}):
            response = await client.get("/healthz", headers=headers)
            ids.append(response.headers["X-Correlation-Id"])
        return ids

    given, generated, spaced, long = serve(scenario)
    assert given == "corr-abc-123"
    assert len(generated) == 32 and generated != spaced != long
    assert " " not in spaced and len(long) == 32


def test_correlation_id_is_on_every_log_line_of_the_request(caplog: pytest.LogCaptureFixture) -> None:
    from gateway import logging_context

    async def scenario(client: TestClient) -> int:
        response = await client.get("/rebalance/executions/exec_x", headers={**AUTH, "X-Correlation-Id": "corr-log-1"})
        return response.status

    caplog.handler.addFilter(logging_context.CorrelationIdFilter())
    with caplog.at_level(logging.INFO):
        assert serve(scenario) == 404
    request_lines = [r for r in caplog.records if r.name.startswith("gateway")]
    assert request_lines, "the request logged nothing"
    assert all(getattr(r, "correlation_id", None) == "corr-log-1" for r in request_lines)


# -- bearer authentication ------------------------------------------------------------------------


@pytest.mark.parametrize(("header", "token"), [
    ("Bearer abc", "abc"), ("bearer abc", "abc"), ("BEARER  abc ", "abc"),
    (None, None), ("", None), ("Basic abc", None), ("Bearer", None), ("Bearer a b", None), ("abc", None),
])
def test_parse_bearer(header: str | None, token: str | None) -> None:
    assert parse_bearer(header) == token


def test_bearer_auth_accepts_every_configured_token_and_nothing_else() -> None:
    auth = BearerAuth(config().token_entries())
    bare, other, advisor = (auth.authenticate(f"Bearer {token}") for token in (TOKEN, OTHER_TOKEN, ADVISOR_TOKEN))
    assert bare is not None and other is not None and advisor is not None
    assert (bare.name, bare.token) == (token_fingerprint(TOKEN), token_fingerprint(TOKEN))
    assert other.name == token_fingerprint(OTHER_TOKEN)
    assert (advisor.name, advisor.token) == ("advisor-7", token_fingerprint(ADVISOR_TOKEN))
    assert auth.authenticate(f"Bearer {TOKEN}x") is None
    assert auth.authenticate(f"Bearer {TOKEN[:-1]}") is None
    assert auth.authenticate(None) is None
    assert BearerAuth([]).authenticate(f"Bearer {TOKEN}") is None
    assert TOKEN not in token_fingerprint(TOKEN)


PROTECTED = [
    ("GET", "/rebalance/executions"),
    ("GET", "/rebalance/executions/exec_1"),
    ("POST", "/rebalance/executions"),
    ("POST", "/rebalance/executions/exec_1/cancel"),
    ("GET", "/openapi.json"),
    ("GET", "/no-such-route"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN} extra"])
def test_advisor_api_without_a_valid_token_is_401(method: str, path: str, authorization: str | None) -> None:
    async def scenario(client: TestClient) -> tuple[int, dict[str, Any], str | None]:
        headers = {} if authorization is None else {"Authorization": authorization}
        response = await client.request(method, path, headers=headers, json={})
        return response.status, await response.json(content_type=None), response.headers.get("WWW-Authenticate")

    status, body, challenge = serve(scenario)
    assert status == 401
    assert_problem(401, body, "unauthorized")
    assert challenge is not None and challenge.startswith("Bearer")


def test_valid_token_opens_the_advisor_api() -> None:
    async def scenario(client: TestClient) -> list[int]:
        out = []
        for token in (TOKEN, OTHER_TOKEN):
            out.append((await client.get("/rebalance/executions", headers={"Authorization": f"Bearer {token}"})).status)
        out.append((await client.get("/openapi.json", headers=AUTH)).status)
        return out

    assert serve(scenario) == [200, 200, 200]


def test_health_readiness_and_metrics_need_no_token() -> None:
    async def scenario(client: TestClient) -> list[int]:
        return [(await client.get(path)).status for path in ("/healthz", "/readyz", "/metrics")]

    assert serve(scenario) == [200, 200, 200]


def test_webhook_is_not_opened_by_a_bearer_token() -> None:
    async def scenario(client: TestClient) -> tuple[int, dict[str, Any]]:
        response = await client.post("/rebalance/executions/exec_1/events", headers=AUTH, data=b"{}")
        return response.status, await response.json(content_type=None)

    status, body = serve(scenario)
    assert status == 401
    assert_problem(401, body, "invalid-signature")


def test_secrets_never_appear_in_logs_or_config_repr(caplog: pytest.LogCaptureFixture) -> None:
    backend = FakeBackend()
    raw = b'{"source":"OMS_X","event_type":"ORDER_ACCEPTED","ticket_id":"t","occurred_at":"2026-02-18T10:00:00Z"}'

    async def scenario(client: TestClient) -> None:
        await client.get("/rebalance/executions", headers=AUTH)
        await client.get("/rebalance/executions", headers={"Authorization": f"Bearer {TOKEN}-wrong"})
        await client.post("/rebalance/executions/exec_1/events", data=raw,
                          headers={"X-Signature": signature_header(SECRET, raw)})
        await client.post("/rebalance/executions/exec_1/events", data=raw,
                          headers={"X-Signature": signature_header("guess", raw)})

    with caplog.at_level(logging.DEBUG):
        serve(scenario, backend)
    assert caplog.records, "nothing was logged"
    for secret in (TOKEN, OTHER_TOKEN, SECRET):
        assert secret not in caplog.text
        assert secret not in repr(config())
    described = str(config().described())
    assert TOKEN not in described and SECRET not in described


# -- metrics and health ---------------------------------------------------------------------------


def test_metrics_count_requests_per_route_and_status() -> None:
    async def scenario(client: TestClient) -> str:
        await client.get("/rebalance/executions/exec_a", headers=AUTH)
        await client.get("/rebalance/executions/exec_b", headers=AUTH)
        await client.get("/rebalance/executions")
        return await (await client.get("/metrics")).text()

    text = serve(scenario)
    assert 'gateway_http_requests_total{method="GET",route="/rebalance/executions/{execution_id}",status="404"} 2.0' in text
    assert 'gateway_http_requests_total{method="GET",route="/rebalance/executions",status="401"} 1.0' in text
    assert "gateway_http_request_duration_seconds_bucket" in text
    assert "# TYPE gateway_executions_created_total counter" in text
    assert "# TYPE gateway_execution_latency_ms histogram" in text
    names = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert all(name.startswith("gateway_") for name in names), names  # none shared with the processor


def test_readiness_follows_the_backend() -> None:
    backend = FakeBackend()
    backend.read_model.ready = False

    async def scenario(client: TestClient) -> list[tuple[int, dict[str, Any]]]:
        out = []
        for path in ("/readyz", "/healthz"):
            response = await client.get(path)
            out.append((response.status, await response.json()))
        response = await client.get("/rebalance/executions", headers=AUTH)
        out.append((response.status, await response.json(content_type=None)))
        return out

    (ready, ready_body), (alive, _), (listing, problem) = serve(scenario, backend)
    assert (ready, ready_body["status"]) == (503, "not-ready")
    assert alive == 200
    assert listing == 503
    assert_problem(503, problem, "service-unavailable")


# -- repeated security-relevant headers ------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "headers"), [
    ("GET", "/rebalance/executions", [("Authorization", f"Bearer {TOKEN}"), ("Authorization", "Bearer other")]),
    ("GET", "/rebalance/executions", [("Authorization", f"Bearer {TOKEN}"), ("Authorization", f"Bearer {TOKEN}")]),
    ("POST", "/rebalance/executions", [("Authorization", f"Bearer {TOKEN}"), ("Idempotency-Key", "k1"),
                                       ("Idempotency-Key", "k2"), ("Content-Type", "application/json")]),
    ("POST", "/rebalance/executions/exec_1/events", [("X-Signature", "t=1,v1=" + "0" * 64),
                                                     ("X-Signature", "t=2,v1=" + "1" * 64)]),
    ("GET", "/healthz", [("X-Correlation-Id", "a"), ("X-Correlation-Id", "b")]),
])
def test_repeated_security_relevant_header_is_400_before_anything_else(
        method: str, path: str, headers: list[tuple[str, str]]) -> None:
    from multidict import CIMultiDict

    backend = FakeBackend()

    async def scenario(client: TestClient) -> tuple[int, dict[str, Any]]:
        response = await client.request(method, path, headers=CIMultiDict(headers), data=b"{}",
                                        skip_auto_headers=["Content-Type"])
        return response.status, await response.json(content_type=None)

    status, body = serve(scenario, backend)
    assert status == 400
    assert_problem(400, body, "duplicate-header")
    assert backend.publisher.published == []


def test_repeated_harmless_headers_are_accepted() -> None:
    from multidict import CIMultiDict

    async def scenario(client: TestClient) -> int:
        headers = CIMultiDict([*AUTH.items(), ("Accept", "application/json"), ("Accept", "*/*")])
        return (await client.get("/rebalance/executions", headers=headers)).status

    assert serve(scenario) == 200


def test_repeated_content_type_is_refused_by_the_http_parser_itself() -> None:
    from multidict import CIMultiDict

    backend = FakeBackend()

    async def scenario(client: TestClient) -> int:
        headers = CIMultiDict([*AUTH.items(), ("Idempotency-Key", "k1"), ("Content-Type", "application/json"),
                               ("Content-Type", "text/plain")])
        return (await client.post("/rebalance/executions", headers=headers, data=b"{}",
                                  skip_auto_headers=["Content-Type"])).status

    assert serve(scenario, backend) == 400
    assert backend.publisher.published == []
