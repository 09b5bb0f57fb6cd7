"""The OMS webhook over HTTP without Kafka: what is published for a verified event, and that
nothing is published for anything unauthenticated or invalid."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.models import EventAccepted
from gateway.webhook import derived_event_id, signature_header
from testkit.gateway_fakes import SECRET, FakeBackend, assert_problem, config, run, state_change
from wire import examples

SELL = examples.ticket_id("oi_sell_1")  # a ticket of the example snapshot
EVENT = {
    "source": "OMS_X", "event_type": "PARTIAL_FILL", "external_order_id": "OMS12345", "ticket_id": SELL,
    "occurred_at": "2026-02-18T10:00:42.5+08:00",
    "details": {"filled_qty": "70.0", "avg_price": "31.44"},
}
NOW = 1_771_408_800


def send(raw: bytes, signature: str | None, *, execution_id: str = "exec_w1", known: bool = True,
         backend: FakeBackend | None = None, now: float = NOW) -> tuple[int, dict[str, Any], FakeBackend]:
    backend = backend or FakeBackend()
    if known:
        backend.read_model.apply(state_change("exec_w1"))

    async def scenario(client: TestClient) -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": "application/json", "X-Correlation-Id": "corr-oms-1"}
        if signature is not None:
            headers["X-Signature"] = signature
        response = await client.post(f"/rebalance/executions/{execution_id}/events", data=raw, headers=headers)
        return response.status, await response.json(content_type=None)

    status, body = run(create_app(config(), backend=backend, clock=lambda: now), scenario)
    return status, body, backend


def raw_event(**changes: Any) -> bytes:
    return json.dumps({**EVENT, **changes}).encode()


def test_signed_event_is_published_as_an_order_event_keyed_by_execution_and_answered_202() -> None:
    raw = raw_event(event_id="exec-rpt-77")
    status, body, backend = send(raw, signature_header(SECRET, raw, NOW))
    assert status == 202
    EventAccepted.model_validate(body)
    assert body == {"event_id": "exec-rpt-77", "execution_id": "exec_w1", "ticket_id": SELL}
    [(topic, key, record, correlation_id)] = backend.publisher.published
    assert (topic, key, correlation_id) == (config().topics.order_events, "exec_w1", "corr-oms-1")
    assert record["event_id"] == "exec-rpt-77" and record["execution_id"] == "exec_w1"
    assert record["event_type"] == "PARTIAL_FILL" and record["external_order_id"] == "OMS12345"
    assert str(record["details"]["filled_qty"]) == "70" and str(record["details"]["avg_price"]) == "31.44"
    assert record["occurred_at"].isoformat() == "2026-02-18T02:00:42.500000+00:00"


def test_event_without_event_id_gets_one_derived_from_the_raw_body() -> None:
    raw = raw_event()
    status, body, backend = send(raw, signature_header(SECRET, raw, NOW))
    assert status == 202
    assert body["event_id"] == derived_event_id(raw) == backend.publisher.published[0][2]["event_id"]
    # A redelivery (new signature time, same body) carries the same id, so the processor dedups it.
    again = send(raw, signature_header(SECRET, raw, NOW + 5), now=NOW + 5)[1]
    assert again["event_id"] == body["event_id"]


@pytest.mark.parametrize("case", ["unsigned", "wrong-secret", "stale", "future", "other-body", "malformed"])
def test_unauthenticated_webhook_is_401_and_publishes_nothing(case: str) -> None:
    raw = raw_event(event_id="e1")
    signature = {
        "unsigned": None,
        "wrong-secret": signature_header("guessed", raw, NOW),
        "stale": signature_header(SECRET, raw, NOW - 301),
        "future": signature_header(SECRET, raw, NOW + 301),
        "other-body": signature_header(SECRET, raw_event(event_id="e2"), NOW),
        "malformed": f"t={NOW}",
    }[case]
    status, body, backend = send(raw, signature)
    assert status == 401
    assert_problem(401, body, "stale-signature" if case in ("stale", "future") else "invalid-signature")
    assert backend.publisher.published == []


def test_signature_is_checked_before_anything_about_the_execution_is_revealed() -> None:
    raw = raw_event()
    assert send(raw, None, execution_id="exec_unknown", known=False)[0] == 401


def test_unknown_execution_is_404() -> None:
    raw = raw_event()
    status, body, backend = send(raw, signature_header(SECRET, raw, NOW), execution_id="exec_unknown", known=False)
    assert status == 404
    assert_problem(404, body, "execution-not-found")
    assert backend.publisher.published == []


def test_ticket_of_another_execution_is_422() -> None:
    raw = raw_event(ticket_id="tkt_000000000000")
    status, body, backend = send(raw, signature_header(SECRET, raw, NOW))
    assert status == 422
    assert_problem(422, body, "unknown-ticket")
    assert backend.publisher.published == []


@pytest.mark.parametrize(("raw", "status"), [
    (b"not json", 400),
    (b"", 400),
    (json.dumps({k: v for k, v in EVENT.items() if k != "ticket_id"}).encode(), 422),
    (raw_event(event_type="EXPLODED"), 422),
    (raw_event(occurred_at="2026-02-18T10:00:00"), 422),  # no offset
    (raw_event(details={"filled_qty": "1e3", "avg_price": "1"}), 422),
    (raw_event(details={"filled_qty": 70, "avg_price": "1"}), 422),  # a number, not a decimal string
    (raw_event(details={"filled_qty": "70"}), 422),  # cumulative without its price
    (raw_event(details={"fill_id": "f1", "last_qty": "5"}), 422),  # per fill without its price
    (raw_event(details={"fill_id": "f1", "last_qty": "0", "last_price": "1"}), 422),
    (raw_event(execution_id="exec_other"), 422),
    (raw_event(unexpected="field"), 422),
    (json.dumps([EVENT]).encode(), 422),
])
def test_invalid_event_is_rejected_and_nothing_is_published(raw: bytes, status: int) -> None:
    got, body, backend = send(raw, signature_header(SECRET, raw, NOW))
    assert got == status
    assert_problem(status, body, "malformed-request" if status == 400 else "validation-failed")
    assert backend.publisher.published == []


def test_kafka_refusing_the_event_is_503() -> None:
    backend = FakeBackend()
    backend.publisher.fail = True
    raw = raw_event()
    status, body, _ = send(raw, signature_header(SECRET, raw, NOW), backend=backend)
    assert status == 503
    assert_problem(503, body, "service-unavailable")


def test_real_clock_is_used_by_default() -> None:
    raw = raw_event()
    backend = FakeBackend()
    backend.read_model.apply(state_change("exec_w1"))

    async def scenario(client: TestClient) -> int:
        response = await client.post("/rebalance/executions/exec_w1/events", data=raw,
                                     headers={"X-Signature": signature_header(SECRET, raw, int(time.time())),
                                              "Content-Type": "application/json"})
        return response.status

    assert run(create_app(config(), backend=backend), scenario) == 202


@pytest.mark.parametrize(("occurred_at", "status"), [
    ("9999-12-31T23:59:59-23:59", 422),  # past datetime.max once in UTC
    ("0001-01-01T00:00:00+01:00", 422),  # before datetime.min once in UTC
    ("0001-01-01T00:00:00Z", 202),
    ("9999-12-31T23:59:59.999999Z", 202),
])
def test_extreme_timestamps_are_refused_or_carried_never_a_500(occurred_at: str, status: int) -> None:
    raw = raw_event(occurred_at=occurred_at)
    assert send(raw, signature_header(SECRET, raw, NOW))[0] == status


def test_largest_decimals_the_schema_allows_are_carried_exactly() -> None:
    big = "9" * 30 + "." + "9" * 30
    raw = raw_event(details={"filled_qty": big, "avg_price": big})
    status, _, backend = send(raw, signature_header(SECRET, raw, NOW))
    assert status == 202
    assert str(backend.publisher.published[0][2]["details"]["filled_qty"]) == big


def test_late_fill_of_one_execution_posted_to_another_executions_url_is_422_and_changes_nothing() -> None:
    """Ticket ids are unique per execution, so the signed ticket_id binds an event to its execution:
    A's report sent to B's URL names a ticket B does not have."""
    import copy

    backend = FakeBackend()
    backend.read_model.apply(state_change("exec_w1"))  # execution A: the example tickets
    b_change = copy.deepcopy(state_change("exec_b1"))
    for ticket in b_change["execution"]["tickets"]:
        ticket["ticket"]["ticket_id"] += "_b"  # execution B: tickets of its own
    backend.read_model.apply(b_change)
    raw = raw_event(event_id="a-late-fill")  # a fill of A's SELL
    status, body, _ = send(raw, signature_header(SECRET, raw, NOW), execution_id="exec_b1", backend=backend,
                           known=False)
    assert status == 422
    assert_problem(422, body, "unknown-ticket")
    assert backend.publisher.published == []
    # ... and the same report naming its execution in the (signed) body is refused at B's URL too.
    named = raw_event(event_id="a-late-fill", execution_id="exec_w1")
    status, body, _ = send(named, signature_header(SECRET, named, NOW), execution_id="exec_b1", backend=backend,
                           known=False)
    assert status == 422 and body["errors"][0]["path"] == "execution_id"
    assert backend.publisher.published == []


def test_webhook_body_not_declared_as_json_is_415_after_the_signature_header_check() -> None:
    raw = raw_event(event_id="e-ct")
    backend = FakeBackend()
    backend.read_model.apply(state_change("exec_w1"))

    async def scenario(client: TestClient) -> list[int]:
        out = []
        for signature in (signature_header(SECRET, raw, NOW), None):
            headers = {"Content-Type": "text/plain"}
            if signature is not None:
                headers["X-Signature"] = signature
            out.append((await client.post("/rebalance/executions/exec_w1/events", data=raw, headers=headers)).status)
        return out

    assert run(create_app(config(), backend=backend, clock=lambda: NOW), scenario) == [415, 401]
    assert backend.publisher.published == []
