"""An in-memory stand-in for the gateway's Kafka side, for fast tests of the HTTP layer:
commands are decoded and answered by a scripted processor, the read model is a real
`ExecutionIndex` filled from wire example snapshots."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.auth import Scope, TokenEntry, token_digest
from gateway.config import GatewayConfig
from gateway.models import Problem
from gateway.problems import PROBLEM_BASE
from gateway.read_model import ExecutionEntry, ExecutionIndex, entry_from_change
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


def entry(execution_id: str, sequence: int = 1, **snapshot_options: Any) -> ExecutionEntry:
    return entry_from_change(state_change(execution_id, sequence, **snapshot_options))


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


class FakeReadModel:
    healthy = True

    def __init__(self) -> None:
        self.index = ExecutionIndex()
        self.ready = True

    def get(self, execution_id: str) -> ExecutionEntry | None:
        return self.index.get(execution_id)

    async def sync(self, timeout_s: float) -> bool:
        return True

    async def lookup(self, execution_id: str, sync_timeout_s: float) -> ExecutionEntry | None:
        return self.index.get(execution_id)


class FakeBackend:
    def __init__(self, answer: Answer | None = None) -> None:
        self.answer: Answer = answer or (lambda command: None)
        self.results = FakeResults()
        self.publisher = FakePublisher(self)
        self.read_model = FakeReadModel()

    def checks(self) -> tuple[bool, bool, dict[str, str]]:
        ready = self.read_model.ready and self.results.ready
        return True, ready, {"read_model": "ready" if self.read_model.ready else "loading"}


def run(app: web.Application, scenario: Callable[[TestClient], Awaitable[Any]]) -> Any:
    """Serve `app` on a loopback test server and run `scenario(client)` against it."""
    async def main() -> Any:
        async with TestClient(TestServer(app)) as client:
            return await scenario(client)
    return asyncio.run(main())
