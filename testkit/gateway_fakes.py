"""A stand-in for the gateway's Kafka side, for fast tests of the HTTP layer: commands are
decoded and answered by a scripted processor, the read model is a real `ReadStore` (RocksDB in a
temporary directory) filled with wire example state changes."""

from __future__ import annotations

import asyncio
import copy
import shutil
import tempfile
import weakref
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.auth import Scope, TokenEntry, token_digest
from gateway.config import GatewayConfig
from gateway.models import Problem
from gateway.problems import PROBLEM_BASE
from gateway.read_model import StoreQueries
from gateway.read_store import ExecutionHead, Origin, ReadStore, origin_of
from kafka_client.settings import KafkaSettings
from wire import examples, serde
from wire.topics import TopicNames

TOKEN = "unit-token-6f1c0d"  # bare tokens: principal tok-<8 hex>, advisor scopes
OTHER_TOKEN = "unit-token-second"
ADVISOR_TOKEN = "unit-advisor-token-1f2e3d"  # principal advisor-7, advisor scopes
INLINE_TOKEN = "unit-inline-token-4c5b6a"  # principal proposal-tool, may send inline artifacts
READER_TOKEN = "unit-reader-token-9d8c7b"  # principal dashboard, executions:read only
SECRET = "unit-webhook-secret-9a7b"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PRINCIPALS = (
    TokenEntry("advisor-7", token_digest(ADVISOR_TOKEN)),
    TokenEntry("proposal-tool", token_digest(INLINE_TOKEN), frozenset(Scope)),
    TokenEntry("dashboard", token_digest(READER_TOKEN), frozenset({Scope.READ})),
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def config(**overrides: Any) -> GatewayConfig:
    """A gateway configuration for tests that never reach Kafka."""
    settings: dict[str, Any] = {"api_tokens": (TOKEN, OTHER_TOKEN), "principals": PRINCIPALS,
                                "webhook_secrets": (SECRET,), **overrides}
    return GatewayConfig(kafka=KafkaSettings("127.0.0.1:1"), topics=TopicNames.defaults("app", {}), **settings)


def assert_problem(status: int, body: dict[str, Any], slug: str) -> None:
    """`body` is RFC 9457 problem details of the given stable type."""
    Problem.model_validate(body)
    assert body["type"] == PROBLEM_BASE + slug
    assert body["status"] == status

Answer = Callable[[dict[str, Any]], dict[str, Any] | None]


def snapshot(execution_id: str = "exec_20260218_abc", *, seconds: int = 10, status: str = "SUBMITTED",
             proposal_id: str = "prop_123") -> dict[str, Any]:
    record = copy.deepcopy(examples.snapshot(status))
    record["execution_id"] = execution_id
    record["proposal_id"] = proposal_id
    record["created_at"] = examples.T0 + timedelta(seconds=seconds)
    return record


def state_change(execution_id: str, sequence: int = 1, **snapshot_options: Any) -> dict[str, Any]:
    """A decoded ExecutionStateChange, as the read model's consumer gets it (wire round trip)."""
    record = {
        "change_id": f"{execution_id}/{sequence}", "execution_id": execution_id, "sequence": sequence,
        "occurred_at": examples.T0, "correlation_id": None, "cause": {"kind": "COMMAND", "id": "cmd"},
        "execution_transition": None, "ticket_transitions": [],
        "execution": snapshot(execution_id, **snapshot_options),
    }
    return serde.decode("ExecutionStateChange", serde.encode("ExecutionStateChange", record),
                        topic="t", partition=0, offset=0)


class FakePublisher:
    healthy = True
    fatal_error = None

    def __init__(self, backend: FakeBackend) -> None:
        self.backend = backend
        self.published: list[tuple[str, str, dict[str, Any], str | None]] = []  # ..., correlation_id header
        self.headers: list[list[tuple[str, bytes]]] = []  # every header of each published record
        self.fail = False

    async def publish(self, topic: str, key: str, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        from gateway.commands import PublishError

        if self.fail:
            raise PublishError("broker unreachable")
        schema = serde.writer_schema(value)
        assert schema is not None, "not a record of our schemas"
        record = serde.decode(schema, value, topic=topic, partition=0, offset=len(self.published))
        correlation_id = dict(headers).get("correlation_id")
        self.published.append((topic, key, record, None if correlation_id is None else correlation_id.decode()))
        self.headers.append(list(headers))
        if schema == "ExecutionCommand":
            answer = self.backend.answer(record)
            if answer is not None:
                asyncio.get_running_loop().call_soon(self.backend.results.resolve, record["command_id"], answer)


class FakeResults:
    ready = True
    healthy = True

    def __init__(self) -> None:
        self.futures: dict[str, asyncio.Future[dict[str, Any]]] = {}

    @property
    def pending(self) -> int:
        return len(self.futures)

    def expect(self, command_id: str) -> asyncio.Future[dict[str, Any]]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.futures[command_id] = future
        return future

    def discard(self, command_id: str) -> None:
        self.futures.pop(command_id, None)

    def resolve(self, command_id: str, result: dict[str, Any]) -> None:
        future = self.futures.pop(command_id, None)
        if future is not None and not future.done():
            future.set_result({"command_id": command_id, "correlation_id": "c", "execution_id": None,
                               "existing_execution_id": None, "problem": None, "execution": None, **result})


class FakeReadModel(StoreQueries):
    """The read model's queries over a real store, filled by the test (`apply`)."""

    healthy = True

    def __init__(self) -> None:
        path = Path(tempfile.mkdtemp(prefix="gateway-fake-read-model-"))
        self.store = ReadStore(path, cache_bytes=1 << 20, write_buffer_bytes=1 << 20)
        self.ready = True
        weakref.finalize(self, _discard, self.store, path)

    def apply(self, *changes: dict[str, Any], origin: Origin | None = None) -> None:
        """Fold decoded state changes (each with its own origin unless one is given) and write them."""
        batch = self.store.batch()
        for change in changes:
            batch.apply_change(change, origin or origin_of(change))
        batch.commit({})

    def apply_snapshot(self, *rows: dict[str, Any]) -> None:
        batch = self.store.batch()
        for row in rows:
            batch.apply_snapshot(row)
        batch.commit({})

    async def sync(self, timeout_s: float) -> bool:
        return True

    async def lookup(self, execution_id: str, sync_timeout_s: float) -> ExecutionHead | None:
        return self.store.head(execution_id)


def _discard(store: ReadStore, path: Path) -> None:
    store.close()
    shutil.rmtree(path, ignore_errors=True)


class FakeBackend:
    def __init__(self, answer: Answer | None = None) -> None:
        self.answer: Answer = answer or (lambda command: None)
        self.results = FakeResults()
        self.publisher = FakePublisher(self)
        self.read_model = FakeReadModel()

    def checks(self) -> tuple[bool, bool, dict[str, str]]:
        ready = self.read_model.ready and self.results.ready
        return True, ready, {"read_model": "ready" if self.read_model.ready else "loading"}


def run(app: web.Application, scenario: Callable[[TestClient[Any, Any]], Awaitable[Any]]) -> Any:
    """Serve `app` on a loopback test server and run `scenario(client)` against it."""
    async def main() -> Any:
        async with TestClient(TestServer(app)) as client:
            return await scenario(client)
    return asyncio.run(main())


# -- state changes and table rows of real executions -----------------------------------------------


def _round_trip(schema: str, record: dict[str, Any]) -> dict[str, Any]:
    return serde.decode(schema, serde.encode(schema, record), topic="t", partition=0, offset=0)


def execution_records(execution_id: str, sample: str = "sgd_multi_currency", *,
                      scripts: dict[str, list[Any]] | None = None,
                      policy: Any = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """An execution driven by the domain against the mock OMS until quiet, as the processor
    publishes it: its state changes (DELTA, one per log entry, in sequence order) and, after each,
    the execution-snapshots row (SUMMARY) a commit at that point would write. Decoded."""
    from execution_domain.policy import ExecutionPolicy
    from mock_oms.provider import MockExecutionProvider
    from testkit.domain import POLICY, T0, drive, new_execution
    from wire.records import snapshot_record, state_change_record

    created = new_execution(sample, policy if isinstance(policy, ExecutionPolicy) else POLICY, execution_id)
    mock = MockExecutionProvider(clock_start=T0 + timedelta(minutes=1))
    for ticket_id, steps in (scripts or {}).items():
        mock.script(ticket_id, *steps)
    _, outcomes = drive(created, mock)
    changes: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for outcome in outcomes:
        entry = outcome.entry
        if entry is None:
            continue
        changes.append(_round_trip("ExecutionStateChange", state_change_record(
            change_id=f"{execution_id}/{entry.seq}", sequence=entry.seq, occurred_at=entry.recorded_at,
            correlation_id="corr-create" if entry.seq == 1 else None, cause_kind="COMMAND", cause_id=f"c{entry.seq}",
            outcome=outcome)))
        rows.append(_round_trip("ExecutionSnapshot", snapshot_record(outcome.execution, content="SUMMARY")))
    return changes, rows


def row(seq: int, second: int = 0) -> dict[str, Any]:
    """A lifecycle row (LifecycleEvent record) numbered `seq`."""
    return {"seq": seq, "kind": "ORDER_EVENT", "ticket_id": examples.ticket_id("oi_sell_1"),
            "event_type": "PARTIAL_FILL", "event_id": f"rpt-{seq}", "from_state": "PARTIAL_FILL",
            "to_state": "PARTIAL_FILL", "reason": None, "occurred_at": examples.T0 + timedelta(seconds=second or seq)}


def long_log(execution_id: str, rows: int) -> list[dict[str, Any]]:
    """State changes of one execution whose log has `rows` rows: the example creation (rows 1..3),
    then one change per further row, each carrying only its row."""
    first = state_change(execution_id, 1)
    changes = [first]
    for seq in range(4, rows + 1):
        change = copy.deepcopy(first)
        change.update(change_id=f"{execution_id}/{seq - 2}", sequence=seq - 2)
        change["execution"].update(tickets=[], events=[row(seq)], event_count=seq, last_sequence=seq - 2)
        changes.append(change)
    return changes
