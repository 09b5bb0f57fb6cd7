"""The read model's store without Kafka: folding state changes and table rows in any order into
the whole execution, rows kept whatever arrives first, a store reopened where it stopped, list
paging over the indexes (newest first, filters, opaque cursors, exactly once while executions
arrive and change), and the GET, events and list endpoints over HTTP."""

from __future__ import annotations

import base64
import copy
import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.app import create_app
from gateway.cursor import Cursor, InvalidCursor, decode_cursor, encode_cursor, filters_digest
from gateway.models import Execution, ExecutionEventPage, ExecutionPage
from gateway.read_model import StateDir, StateDirError
from gateway.read_store import FORMAT, ReadStore
from gateway.views import event_view, header_view, ticket_view
from testkit.gateway_fakes import (
    AUTH,
    FakeBackend,
    assert_problem,
    config,
    execution_records,
    long_log,
    row,
    run,
    state_change,
)
from wire.views import ExecutionView

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


# -- the store ----------------------------------------------------------------------------------------


@pytest.fixture
def store_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="read-store-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def store(store_dir: Path) -> Iterator[ReadStore]:
    opened = ReadStore(store_dir / "db", cache_bytes=1 << 20, write_buffer_bytes=1 << 20)
    yield opened
    opened.close()


def apply(store: ReadStore, *changes: dict[str, Any], rows: tuple[dict[str, Any], ...] = (),
          offsets: dict[tuple[str, int], int] | None = None) -> None:
    batch = store.batch()
    for change in changes:
        batch.apply_change(change)
    for table_row in rows:
        batch.apply_snapshot(table_row)
    batch.commit(offsets or {})


def whole(store: ReadStore, execution_id: str) -> dict[str, Any]:
    found = store.execution(execution_id, 10**6)
    assert found is not None
    head, tickets, rows = found
    return {"header": head.view, "sequence": head.sequence,
            "tickets": [orjson.loads(t) for t in tickets], "events": [orjson.loads(r) for r in rows]}


def expected(changes: list[dict[str, Any]]) -> dict[str, Any]:
    """The execution as `wire.views` folds its changes, rendered as the store renders it."""
    view = ExecutionView(changes[0]["execution_id"])
    for change in changes:
        view.apply_change(change)
    snapshot = view.snapshot()
    return {"header": orjson.loads(orjson.dumps(header_view(snapshot))), "sequence": view.sequence,
            "tickets": orjson.loads(orjson.dumps([ticket_view(t) for t in snapshot["tickets"]])),
            "events": orjson.loads(orjson.dumps([event_view(e) for e in snapshot["events"]]))}


def test_state_change_that_is_not_newer_changes_no_summary_but_its_rows_are_kept(store: ReadStore) -> None:
    first = state_change("exec_1", 2, status="ACCEPTED")
    older = state_change("exec_1", 1, status="SUBMITTED")
    older["execution"]["events"] = [row(4)]
    apply(store, first)
    batch = store.batch()
    assert not batch.apply_change(older)
    assert not batch.apply_change(first)  # the same sequence again
    batch.commit({})
    held = whole(store, "exec_1")
    assert held["header"]["status"] == "ACCEPTED" and held["sequence"] == 2
    assert [e["seq"] for e in held["events"]] == [1, 2, 3, 4]


def test_a_delta_merges_its_tickets_in_place_and_appends_its_rows(store: ReadStore) -> None:
    first = state_change("exec_1", 1)
    second = copy.deepcopy(first)
    second.update(sequence=2)
    fx = copy.deepcopy(second["execution"]["tickets"][2])
    fx.update(status="SUBMITTED", released=True)
    second["execution"].update(tickets=[fx], events=[row(4)], event_count=4, status="SUBMITTED")
    apply(store, first, second)
    held = whole(store, "exec_1")
    assert [(t["ticket_type"], t["status"]) for t in held["tickets"]] == [
        ("CASH_TRANSFER", "FILLED"), ("SECURITY_ORDER", "PARTIAL_FILL"), ("FX_SPOT_ORDER", "SUBMITTED")]
    assert [e["seq"] for e in held["events"]] == [1, 2, 3, 4]
    assert held["header"]["status"] == "SUBMITTED" and held["header"]["event_count"] == 4


def test_a_table_row_newer_than_held_replaces_the_summary_and_a_stale_one_is_dropped(store: ReadStore) -> None:
    changes, table = execution_records("exec_t")
    apply(store, changes[0])
    batch = store.batch()
    assert batch.apply_snapshot(table[-1])
    assert not batch.apply_snapshot(table[1])  # older than what is held now
    batch.commit({})
    held = whole(store, "exec_t")
    assert held["sequence"] == len(changes)
    assert held["header"] == expected(changes)["header"]
    assert held["tickets"] == expected(changes)["tickets"]
    assert [e["seq"] for e in held["events"]] == [e["seq"] for e in changes[0]["execution"]["events"]]


def _interleavings(draw: Any, changes: list[dict[str, Any]], table: list[dict[str, Any]]) -> list[list[Any]]:
    """Batches of ("change"|"row", record): the table rows a subset (one per transaction), both
    topics each in order, merged at random, cut into batches, some records read twice (a resume
    from an earlier offset)."""
    kept_rows = [r for r in table if draw(st.booleans())]
    stream: list[tuple[str, dict[str, Any]]] = []
    i = j = 0
    while i < len(changes) or j < len(kept_rows):
        if j == len(kept_rows) or (i < len(changes) and draw(st.booleans())):
            stream.append(("change", changes[i]))
            i += 1
        else:
            stream.append(("row", kept_rows[j]))
            j += 1
    if stream and draw(st.booleans()):  # a redelivery of a stretch already read
        start = draw(st.integers(0, len(stream) - 1))
        cut = draw(st.integers(start, len(stream)))
        stream = stream[:cut] + stream[start:cut] + stream[cut:]
    batches: list[list[Any]] = [[]]
    for item in stream:
        if batches[-1] and draw(st.booleans()):
            batches.append([])
        batches[-1].append(item)
    return batches


_RECORDS = {
    sample: execution_records(f"exec_{sample}", sample)
    for sample in ("sgd_multi_currency", "rfc_fx_reject", "rfc_partial_then_fill")
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sample=st.sampled_from(sorted(_RECORDS)), data=st.data())
def test_changes_and_table_rows_in_any_interleaving_fold_into_the_whole_execution(
    sample: str, data: st.DataObject, store_dir: Path,
) -> None:
    changes, table = _RECORDS[sample]
    path = store_dir / f"db-{random.getrandbits(64):x}"
    store = ReadStore(path, cache_bytes=1 << 20, write_buffer_bytes=1 << 20)
    try:
        for batch_items in _interleavings(data.draw, changes, table):
            batch = store.batch()
            for kind, record in batch_items:
                if kind == "change":
                    batch.apply_change(record)
                else:
                    batch.apply_snapshot(record)
            batch.commit({})
        assert whole(store, changes[0]["execution_id"]) == expected(changes)
    finally:
        store.close()
        shutil.rmtree(path, ignore_errors=True)


def test_full_records_from_before_v2_are_folded_whole(store: ReadStore) -> None:
    """A v1 state change carries every ticket and the whole log (content FULL, no counters)."""
    changes, _ = execution_records("exec_v1", "rfc_accept_all")
    view = ExecutionView("exec_v1")
    full = []
    for change in changes:
        view.apply_change(change)
        snapshot = {**view.snapshot(), "content": "FULL", "ticket_count": None, "open_ticket_count": None,
                    "is_complete": None, "event_count": None, "last_sequence": None}
        full.append({**change, "execution": snapshot})
    apply(store, *full[:2])
    apply(store, *full[2:])
    assert whole(store, "exec_v1") == expected(changes)
    assert whole(store, "exec_v1")["header"]["is_complete"] is True


def test_store_reopened_holds_what_was_written_and_the_offsets_written_with_it(store_dir: Path) -> None:
    changes, table = execution_records("exec_r")
    first = ReadStore(store_dir / "db")
    first.reset({"format": 1, "cluster_id": "c", "topics": {}}, "new store")
    apply(first, *changes[:3], offsets={("execution-state-changes", 0): 3, ("execution-snapshots", 1): 0})
    apply(first, *changes[3:], rows=(table[-1],), offsets={("execution-state-changes", 0): len(changes),
                                                            ("execution-snapshots", 1): 1})
    before = whole(first, "exec_r")
    first.close()
    reopened = ReadStore(store_dir / "db")
    try:
        assert reopened.offsets() == {("execution-state-changes", 0): len(changes), ("execution-snapshots", 1): 1}
        assert reopened.identity() == {"format": FORMAT, "cluster_id": "c", "topics": {}}
        assert reopened.count() == 1
        assert whole(reopened, "exec_r") == before == expected(changes)
        reopened.reset({"format": 1, "cluster_id": "other", "topics": {}}, "another cluster")
        assert reopened.head("exec_r") is None and reopened.offsets() == {} and reopened.count() == 0
    finally:
        reopened.close()


def test_an_unreadable_store_is_rebuilt_empty_not_fatal(store_dir: Path) -> None:
    path = store_dir / "db"
    path.mkdir()
    (path / "CURRENT").write_text("MANIFEST-999999\n")  # names a manifest that does not exist
    store = ReadStore(path)
    try:
        assert store.rebuilt_reason is not None and store.count() == 0 and store.identity() is None
    finally:
        store.close()


def test_a_state_directory_in_use_by_another_gateway_is_refused(store_dir: Path) -> None:
    held = StateDir(store_dir / "state")
    try:
        with pytest.raises(StateDirError, match="in use by another gateway"):
            StateDir(store_dir / "state")
    finally:
        held.close()
    StateDir(store_dir / "state").close()  # free again once released
    assert (store_dir / "state").exists()  # a configured directory is never removed


# -- list index ---------------------------------------------------------------------------------------


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["execution_id"] for item in items]


def test_list_is_newest_first_then_by_execution_id_descending(store: ReadStore) -> None:
    apply(store, *(state_change(e, seconds=s) for e, s in (("exec_b", 5), ("exec_a", 5), ("exec_c", 1), ("exec_d", 9))))
    page, following = store.page(limit=10)
    assert ids(page) == ["exec_d", "exec_b", "exec_a", "exec_c"]
    assert following is None


def test_filters_by_proposal_status_and_created_range(store: ReadStore) -> None:
    apply(store, *(state_change(f"exec_{n}", seconds=n, proposal_id="prop_even" if n % 2 == 0 else "prop_odd",
                                status="FILLED" if n < 5 else "SUBMITTED") for n in range(10)))
    base = state_change("exec_0", seconds=0)["execution"]["created_at"]
    second = 1_000_000

    def only(**filters: Any) -> list[str]:
        return ids(store.page(limit=50, **filters)[0])

    base_us = int(base.timestamp()) * 1_000_000
    assert only(proposal_id="prop_even") == ["exec_8", "exec_6", "exec_4", "exec_2", "exec_0"]
    assert only(proposal_id="prop_none") == []
    assert only(status="FILLED") == ["exec_4", "exec_3", "exec_2", "exec_1", "exec_0"]
    assert only(proposal_id="prop_odd", status="SUBMITTED") == ["exec_9", "exec_7", "exec_5"]
    assert only(from_us=base_us + 3 * second, to_us=base_us + 6 * second) == ["exec_5", "exec_4", "exec_3"]
    assert only(from_us=base_us + 8 * second) == ["exec_9", "exec_8"]
    assert only(to_us=base_us + 1 * second) == ["exec_0"]
    assert only(status="FILLED", from_us=base_us + 2 * second, to_us=base_us + 4 * second) == ["exec_3", "exec_2"]


def test_a_status_change_moves_the_execution_between_status_filters(store: ReadStore) -> None:
    apply(store, state_change("exec_s", 1, status="SUBMITTED"))
    apply(store, state_change("exec_s", 2, status="FILLED"))
    assert ids(store.page(limit=5, status="SUBMITTED")[0]) == []
    assert ids(store.page(limit=5, status="FILLED")[0]) == ["exec_s"]
    assert ids(store.page(limit=5, proposal_id="prop_123", status="FILLED")[0]) == ["exec_s"]
    assert store.page(limit=5)[0][0]["status"] == "FILLED"


def test_last_page_has_no_cursor_even_when_it_is_full(store: ReadStore) -> None:
    apply(store, *(state_change(f"exec_{n}", seconds=n) for n in range(4)))
    first, following = store.page(limit=2)
    second, last = store.page(limit=2, after=following)
    assert ids(first + second) == ["exec_3", "exec_2", "exec_1", "exec_0"]
    assert last is None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    initial=st.lists(st.integers(0, 50), max_size=30),
    arrivals=st.lists(st.lists(st.integers(0, 60), max_size=4), max_size=12),
    updates=st.lists(st.integers(0, 1000), max_size=12),
    limit=st.integers(1, 7),
    status=st.sampled_from([None, "SUBMITTED", "FILLED"]),
    seed=st.integers(0, 2**16),
)
def test_paging_returns_each_execution_exactly_once_while_executions_arrive_and_change(
    initial: list[int], arrivals: list[list[int]], updates: list[int], limit: int, status: str | None, seed: int,
    store_dir: Path,
) -> None:
    path = store_dir / f"db-{random.getrandbits(64):x}"
    store = ReadStore(path, cache_bytes=1 << 20, write_buffer_bytes=1 << 20)
    rng = random.Random(seed)
    held: dict[str, tuple[int, int, str]] = {}  # id -> (sequence, seconds, status)

    def add(seconds: int) -> str:
        execution_id = f"exec_{len(held) + 1:04d}"
        held[execution_id] = (1, seconds, rng.choice(["SUBMITTED", "FILLED"]))
        apply(store, state_change(execution_id, 1, seconds=seconds, status=held[execution_id][2]))
        return execution_id

    try:
        present = {add(seconds) for seconds in initial}
        present_matching = {e for e in present if status is None or held[e][2] == status}
        seen: list[str] = []
        after = None
        for page_no in range(1000):
            page, after = store.page(limit=limit, after=after, status=status)
            seen += ids(page)
            for seconds in arrivals[page_no] if page_no < len(arrivals) else []:
                add(seconds)
            if page_no < len(updates) and held:
                victim = sorted(held)[updates[page_no] % len(held)]
                sequence, seconds, old = held[victim]
                held[victim] = (sequence + 1, seconds, "FILLED")
                apply(store, state_change(victim, sequence + 1, seconds=seconds, status="FILLED"))
            if after is None:
                break
        assert len(seen) == len(set(seen)), "an execution was returned twice"
        unchanged = {e for e in present_matching if held[e][2] == (status or held[e][2])}
        assert unchanged <= set(seen), "an execution matching all along was skipped"
    finally:
        store.close()
        shutil.rmtree(path, ignore_errors=True)


# -- over HTTP -----------------------------------------------------------------------------------------


def call(path: str, backend: FakeBackend, params: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    async def scenario(client: TestClient) -> tuple[int, dict[str, Any]]:
        response = await client.get(path, params=params or {}, headers=AUTH)
        return response.status, await response.json(content_type=None)

    return run(create_app(config(), backend=backend), scenario)


def test_get_answers_the_summary_every_ticket_and_the_50_most_recent_rows_with_a_link_to_the_rest() -> None:
    backend = FakeBackend()
    backend.read_model.apply(*long_log("exec_long", 120))
    status, body = call("/rebalance/executions/exec_long", backend)
    assert status == 200
    Execution.model_validate(body)
    assert [e["seq"] for e in body["events"]] == list(range(71, 121))
    assert body["event_count"] == 120 and len(body["tickets"]) == 3
    assert (body["open_ticket_count"], body["is_complete"]) == (2, False)
    assert body["links"] == {"self": "/rebalance/executions/exec_long",
                             "events": "/rebalance/executions/exec_long/events"}
    sell = body["tickets"][1]
    assert (sell["status"], sell["filled_qty"], sell["avg_price"], sell["external_order_id"]) == (
        "PARTIAL_FILL", "70", "31.4412345678901234567890123456", "OMS12345")
    assert body["created_at"].endswith("Z")


def test_events_pages_the_whole_log_ascending_each_row_once() -> None:
    backend = FakeBackend()
    backend.read_model.apply(*long_log("exec_long", 120))
    seen: list[int] = []
    path, params = "/rebalance/executions/exec_long/events", {"limit": "50"}
    pages = 0
    while True:
        status, body = call(path, backend, params)
        assert status == 200, body
        ExecutionEventPage.model_validate(body)
        assert body["event_count"] == 120 and body["limit"] == 50
        seen += [e["seq"] for e in body["items"]]
        pages += 1
        if body["next"] is None:
            break
        path, _, query = body["next"].partition("?")
        params = dict(part.split("=") for part in query.split("&"))
    assert seen == list(range(1, 121)) and pages == 3
    status, body = call("/rebalance/executions/exec_long/events", backend, {"after_seq": "118"})
    assert [e["seq"] for e in body["items"]] == [119, 120] and body["next"] is None
    status, body = call("/rebalance/executions/exec_long/events", backend, {"after_seq": "120"})
    assert (status, body["items"], body["next"]) == (200, [], None)


@pytest.mark.parametrize(("params", "slug"), [
    ({"after_seq": "-1"}, "malformed-request"),
    ({"after_seq": "x"}, "malformed-request"),
    ({"after_seq": "1" * 13}, "malformed-request"),
    ({"limit": "0"}, "malformed-request"),
    ({"limit": "1001"}, "malformed-request"),
    ({"since": "1"}, "malformed-request"),
])
def test_invalid_events_parameters_are_400(params: dict[str, str], slug: str) -> None:
    backend = FakeBackend()
    backend.read_model.apply(state_change("exec_e"))
    status, body = call("/rebalance/executions/exec_e/events", backend, params)
    assert status == 400
    assert_problem(400, body, slug)


def test_events_of_an_unknown_execution_is_404() -> None:
    status, body = call("/rebalance/executions/exec_nope/events", FakeBackend())
    assert status == 404
    assert_problem(404, body, "execution-not-found")


def list_call(params: dict[str, str], backend: FakeBackend | None = None) -> tuple[int, dict[str, Any]]:
    return call("/rebalance/executions", backend or FakeBackend(), params)


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
    backend.read_model.apply(*(state_change(f"exec_{n}", seconds=n, proposal_id="prop_a" if n != 3 else "prop_b")
                               for n in range(7)))
    seen: list[str] = []
    params = {"proposal_id": "prop_a", "limit": "2", "from": "2026-02-18T10:00:00Z", "to": "2030-01-01T00:00:00+08:00"}
    while True:
        status, body = list_call(params, backend)
        assert status == 200
        ExecutionPage.model_validate(body)
        assert body["limit"] == 2 and len(body["items"]) <= 2
        assert all(item["open_ticket_count"] == 2 and item["is_complete"] is False for item in body["items"])
        seen += ids(body["items"])
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
    backend.read_model.apply(*(state_change(f"exec_{n:02d}", seconds=n) for n in range(60)))
    status, body = list_call({}, backend)
    assert status == 200 and body["limit"] == 50 and len(body["items"]) == 50 and body["next_cursor"]


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+05:00"])
def test_out_of_range_timestamp_filter_is_400(value: str) -> None:
    status, body = list_call({"from": value})
    assert status == 400
    assert_problem(400, body, "malformed-request")


def test_list_item_counters_follow_the_execution() -> None:
    backend = FakeBackend()
    done = state_change("exec_done", 2, status="FILLED")
    done["execution"].update(open_ticket_count=0, is_complete=True)
    backend.read_model.apply(state_change("exec_done", 1, seconds=1), done,
                             state_change("exec_open", 1, seconds=2))
    status, body = list_call({}, backend)
    assert status == 200
    assert [(i["execution_id"], i["open_ticket_count"], i["is_complete"]) for i in body["items"]] == [
        ("exec_open", 2, False), ("exec_done", 0, True)]
