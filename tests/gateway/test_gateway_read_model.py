"""The read model's index and the list endpoint's paging, without Kafka: newest change wins,
stable order, filters, opaque cursors, and exactly-once paging while executions arrive."""

from __future__ import annotations

import base64
import random
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.app import create_app
from gateway.cursor import Cursor, InvalidCursor, decode_cursor, encode_cursor, filters_digest
from gateway.models import Execution, ExecutionPage
from gateway.read_model import ExecutionIndex
from testkit.gateway_fakes import AUTH, FakeBackend, assert_problem, config, entry, run

# -- cursor encoding ------------------------------------------------------------------------------


def test_cursor_round_trips_and_is_opaque_url_safe_text() -> None:
    digest = filters_digest("prop_1", None, None, None)
    text = encode_cursor(Cursor(1_771_408_800_123_456, "exec_abc"), digest)
    assert text.isascii() and "=" not in text and "/" not in text and "+" not in text
    assert decode_cursor(text, digest) == Cursor(1_771_408_800_123_456, "exec_abc")


@pytest.mark.parametrize("text", [
    "", "!!!", "x" * 600, base64.urlsafe_b64encode(b"not json").decode(),
    base64.urlsafe_b64encode(orjson.dumps({"a": 1})).decode(),
    base64.urlsafe_b64encode(orjson.dumps([2, 1, "e", "d"])).decode(),  # unknown version
    base64.urlsafe_b64encode(orjson.dumps([1, "1", "e", "d"])).decode(),
    base64.urlsafe_b64encode(orjson.dumps([1, 1.5, "e", "d"])).decode(),
    base64.urlsafe_b64encode(orjson.dumps([1, 1, None, "d"])).decode(),
    "\u00e9t\u00e9",
])
def test_tampered_or_foreign_cursor_is_refused(text: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(text, "d")


def test_cursor_from_a_query_with_other_filters_is_refused() -> None:
    text = encode_cursor(Cursor(1, "e"), filters_digest("prop_1", None, None, None))
    with pytest.raises(InvalidCursor, match="other filters"):
        decode_cursor(text, filters_digest("prop_2", None, None, None))


# -- index ----------------------------------------------------------------------------------------


def test_change_that_is_not_newer_is_dropped() -> None:
    index = ExecutionIndex()
    assert index.apply(entry("exec_1", 2, status="ACCEPTED"))
    assert not index.apply(entry("exec_1", 1, status="SUBMITTED"))  # older
    assert not index.apply(entry("exec_1", 2, status="FILLED"))  # same sequence again
    assert index.get("exec_1").status == "ACCEPTED"
    assert index.apply(entry("exec_1", 3, status="FILLED"))
    assert index.get("exec_1").status == "FILLED" and len(index) == 1


def test_entry_body_is_the_documented_execution() -> None:
    body = orjson.loads(entry("exec_1").body)
    Execution.model_validate(body)
    assert [t["ticket_type"] for t in body["tickets"]] == ["CASH_TRANSFER", "SECURITY_ORDER", "FX_SPOT_ORDER"]
    sell = body["tickets"][1]
    assert (sell["status"], sell["filled_qty"], sell["avg_price"], sell["external_order_id"]) == (
        "PARTIAL_FILL", "70", "31.4412345678901234567890123456", "OMS12345")
    assert [event["seq"] for event in body["events"]] == [1, 2, 3]
    assert body["created_at"].endswith("Z")


def ids(entries: list[Any]) -> list[str]:
    return [e.execution_id for e in entries]


def test_list_is_newest_first_then_by_execution_id_descending() -> None:
    index = ExecutionIndex()
    for execution_id, seconds in (("exec_b", 5), ("exec_a", 5), ("exec_c", 1), ("exec_d", 9)):
        index.apply(entry(execution_id, seconds=seconds))
    page, following = index.page(limit=10)
    assert ids(page) == ["exec_d", "exec_b", "exec_a", "exec_c"]
    assert following is None


def test_filters_by_proposal_status_and_created_range() -> None:
    index = ExecutionIndex()
    for n in range(10):
        index.apply(entry(f"exec_{n}", seconds=n, proposal_id="prop_even" if n % 2 == 0 else "prop_odd",
                          status="FILLED" if n < 5 else "SUBMITTED"))
    base = entry("exec_0", seconds=0).created_us

    def only(**filters: Any) -> list[str]:
        return ids(index.page(limit=50, **filters)[0])

    assert only(proposal_id="prop_even") == ["exec_8", "exec_6", "exec_4", "exec_2", "exec_0"]
    assert only(proposal_id="prop_none") == []
    assert only(status="FILLED") == ["exec_4", "exec_3", "exec_2", "exec_1", "exec_0"]
    assert only(proposal_id="prop_odd", status="SUBMITTED") == ["exec_9", "exec_7", "exec_5"]
    second = 1_000_000
    assert only(from_us=base + 3 * second, to_us=base + 6 * second) == ["exec_5", "exec_4", "exec_3"]  # [from, to)
    assert only(from_us=base + 8 * second) == ["exec_9", "exec_8"]
    assert only(to_us=base + 1 * second) == ["exec_0"]


def test_last_page_has_no_cursor_even_when_it_is_full() -> None:
    index = ExecutionIndex()
    for n in range(4):
        index.apply(entry(f"exec_{n}", seconds=n))
    first, following = index.page(limit=2)
    second, last = index.page(limit=2, after=following)
    assert ids(first + second) == ["exec_3", "exec_2", "exec_1", "exec_0"]
    assert last is None


@settings(max_examples=60, deadline=None)
@given(
    initial=st.lists(st.integers(0, 50), max_size=30),
    arrivals=st.lists(st.lists(st.integers(0, 60), max_size=4), max_size=12),
    updates=st.lists(st.integers(0, 1000), max_size=12),
    limit=st.integers(1, 7),
    seed=st.integers(0, 2**16),
)
def test_paging_returns_each_execution_exactly_once_while_executions_arrive_and_change(
    initial: list[int], arrivals: list[list[int]], updates: list[int], limit: int, seed: int,
) -> None:
    index = ExecutionIndex()
    rng = random.Random(seed)
    counter = 0

    def add(seconds: int) -> str:
        nonlocal counter
        counter += 1
        execution_id = f"exec_{counter:04d}"
        index.apply(entry(execution_id, seconds=seconds, status=rng.choice(["SUBMITTED", "FILLED"])))
        return execution_id

    present_at_start = {add(seconds) for seconds in initial}
    seen: list[str] = []
    after = None
    for page_no in range(1000):
        page, after = index.page(limit=limit, after=after)
        seen += ids(page)
        # Between pages: new executions (at any created_at, also in the past) and state changes.
        for seconds in arrivals[page_no] if page_no < len(arrivals) else []:
            add(seconds)
        if page_no < len(updates) and len(index):
            victim = sorted(index._entries)[updates[page_no] % len(index)]  # noqa: SLF001
            held = index.get(victim)
            index.apply(entry(victim, held.sequence + 1, seconds=(held.created_us - entry("x", seconds=0).created_us) // 10**6,
                              status="CANCELLED"))
        if after is None:
            break
    assert len(seen) == len(set(seen)), "an execution was returned twice"
    assert present_at_start <= set(seen), "an execution present all along was skipped"


# -- GET /rebalance/executions over HTTP -------------------------------------------------------------


def list_call(params: dict[str, str], backend: FakeBackend | None = None) -> tuple[int, dict[str, Any]]:
    backend = backend or FakeBackend()

    async def scenario(client: TestClient) -> tuple[int, dict[str, Any]]:
        response = await client.get("/rebalance/executions", params=params, headers=AUTH)
        return response.status, await response.json(content_type=None)

    return run(create_app(config(), backend=backend), scenario)


@pytest.mark.parametrize(("params", "slug"), [
    ({"limit": "0"}, "malformed-request"),
    ({"limit": "201"}, "malformed-request"),
    ({"limit": "ten"}, "malformed-request"),
    ({"limit": "-1"}, "malformed-request"),
    ({"limit": "\u00b2"}, "malformed-request"),  # a Unicode digit int() refuses
    ({"limit": "1" * 30}, "malformed-request"),
    ({"status": "DONE"}, "malformed-request"),
    ({"from": "yesterday"}, "malformed-request"),
    ({"to": "2026-02-18T10:00:00"}, "malformed-request"),  # no offset
    ({"proposal_id": "p" * 129}, "malformed-request"),
    ({"cursor": "garbage"}, "invalid-cursor"),
])
def test_invalid_list_parameters_are_400(params: dict[str, str], slug: str) -> None:
    status, body = list_call(params)
    assert status == 400
    assert_problem(400, body, slug)


def test_paging_over_http_with_filters_and_a_bounded_limit() -> None:
    backend = FakeBackend()
    for n in range(7):
        backend.read_model.index.apply(entry(f"exec_{n}", seconds=n, proposal_id="prop_a" if n != 3 else "prop_b"))
    seen: list[str] = []
    params = {"proposal_id": "prop_a", "limit": "2", "from": "2026-02-18T10:00:00Z", "to": "2030-01-01T00:00:00+08:00"}
    while True:
        status, body = list_call(params, backend)
        assert status == 200
        ExecutionPage.model_validate(body)
        assert body["limit"] == 2 and len(body["items"]) <= 2
        seen += [item["execution_id"] for item in body["items"]]
        if body["next_cursor"] is None:
            break
        params = {**params, "cursor": body["next_cursor"]}
    assert seen == ["exec_6", "exec_5", "exec_4", "exec_2", "exec_1", "exec_0"]
    # The cursor is bound to the filters it was issued for.
    status, problem = list_call({"proposal_id": "prop_b", "cursor": params["cursor"]}, backend)
    assert status == 400
    assert_problem(400, problem, "invalid-cursor")


def test_default_limit_is_50() -> None:
    backend = FakeBackend()
    for n in range(60):
        backend.read_model.index.apply(entry(f"exec_{n:02d}", seconds=n))
    status, body = list_call({}, backend)
    assert status == 200 and body["limit"] == 50 and len(body["items"]) == 50 and body["next_cursor"]


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+05:00"])
def test_out_of_range_timestamp_filter_is_400(value: str) -> None:
    status, body = list_call({"from": value})
    assert status == 400
    assert_problem(400, body, "malformed-request")
