"""Runs the real gateway (aiohttp app + its Kafka clients) on a free loopback port, in a thread
with its own event loop, next to real processors from `processor_testkit`; and a small HTTP
client for the tests."""

from __future__ import annotations

import asyncio
import json
import selectors
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from aiohttp import web

from execution_domain.proposal import seal_artifact
from gateway import server
from gateway.app import GUARD, HANDLERS, create_app
from gateway.auth import Scope, TokenEntry, token_digest
from gateway.config import GatewayConfig
from gateway.webhook import signature_header
from kafka_client.settings import KafkaSettings
from testkit.processor import ProcessorHarness, RunningProcessor, ScriptedOms, TopicReader, load_sample, wait_until
from wire import records as translate
from wire import serde

TOKEN = "test-token-" + uuid.uuid4().hex  # principal PRINCIPAL, advisor scopes
PRINCIPAL = "advisor-e2e"
INLINE_TOKEN = "test-inline-token-" + uuid.uuid4().hex  # principal proposal-tool, may send inline artifacts
WEBHOOK_SECRET = "whsec-" + uuid.uuid4().hex
OLD_WEBHOOK_SECRET = "whsec-old-" + uuid.uuid4().hex


def gateway_config(harness: ProcessorHarness, **overrides: Any) -> GatewayConfig:
    settings: dict[str, Any] = {
        "kafka": KafkaSettings(harness.bootstrap),
        "topics": harness.topics,
        "application_id": harness.application_id,
        "instance_id": f"gw-{uuid.uuid4().hex[:6]}",
        "principals": (TokenEntry(PRINCIPAL, token_digest(TOKEN)),
                       TokenEntry("proposal-tool", token_digest(INLINE_TOKEN), frozenset(Scope))),
        "inline_artifacts": True,
        "webhook_secrets": (WEBHOOK_SECRET, OLD_WEBHOOK_SECRET),
        "result_timeout_s": 10.0,
        # A miss waits only until the read model reaches the topic's end; on a loaded 2-core runner
        # that can take longer than the 2 s default, and a 404 would fail a test that read its write.
        "read_sync_timeout_s": 10.0,
    }
    settings.update(overrides)
    return GatewayConfig(**settings)


class LiveGateway:
    """The gateway served as `python -m gateway` serves it (`gateway.server`: aiohttp's runner
    behind the connection guard) on 127.0.0.1:<free port>, in a thread with its own loop."""

    def __init__(self, config: GatewayConfig, **app_options: Any) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="gateway-loop", daemon=True)
        self._thread.start()
        self.app = create_app(config, **app_options)
        self._runner: web.AppRunner | None = None
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        self.url = f"http://127.0.0.1:{self.port}"

    async def _start(self) -> int:
        self._runner, site = await server.start(self.app, self.config, self.app[GUARD], host="127.0.0.1", port=0)
        assert site.bound_port is not None
        return site.bound_port

    @staticmethod
    async def _cleanup(runner: web.AppRunner) -> None:
        await runner.cleanup()
        # Connection tasks aiohttp cancelled on shutdown: let them finish before the loop closes.
        pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def wait_ready(self, timeout_s: float = 60) -> None:
        wait_until(lambda: requests.get(f"{self.url}/readyz", timeout=5).status_code == 200, timeout_s,
                   interval_s=0.1, what="gateway /readyz")

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._cleanup(self._runner), self.loop).result(60)
            self._runner = None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class Client:
    """requests, with the bearer token and a correlation id per call."""

    def __init__(self, base_url: str, token: str | None = TOKEN) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        if token is not None:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, self.base_url + path, timeout=30, **kwargs)

    def create(self, body: dict[str, Any], key: str | None, **headers: str) -> requests.Response:
        if key is not None:
            headers["Idempotency-Key"] = key
        return self.request("POST", "/rebalance/executions", json=body, headers=headers)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post_event(self, execution_id: str, raw: bytes, signature: str | None) -> requests.Response:
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["X-Signature"] = signature
        # No bearer token: the webhook authenticates by its signature alone.
        return requests.post(f"{self.base_url}/rebalance/executions/{execution_id}/events", data=raw,
                             headers=headers, timeout=30)


def unique_proposal(sample: str, label: str, **changes: Any) -> dict[str, Any]:
    """A sample proposal under a proposal id no other test uses, sealed (valid hash)."""
    raw = load_sample(sample)
    raw["proposal_id"] = f"prop_{label}_{uuid.uuid4().hex[:8]}"
    raw.update(changes)
    return seal_artifact(raw)


def create_body(proposal: dict[str, Any], *, policy: dict[str, Any] | None = None,
                inline: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "proposal_id": proposal["proposal_id"],
        "version_no": proposal["version_no"],
        "execution_policy": {"max_slippage_bps": "25", **(policy or {})},
        "actor": {"requested_by": "advisor_001", "channel": "ADVISOR_APP"},
    }
    if inline:
        body["artifact"] = proposal
    return body


def new_key(label: str = "k") -> str:
    return f"{label}-{uuid.uuid4().hex}"


def event_body(ticket_id: str, event_type: str, *, event_id: str | None = None, details: dict[str, Any] | None = None,
               external_order_id: str | None = "OMS-1", occurred_at: datetime | None = None) -> bytes:
    body: dict[str, Any] = {
        "source": "OMS_X",
        "event_type": event_type,
        "external_order_id": external_order_id,
        "ticket_id": ticket_id,
        "occurred_at": (occurred_at or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
        "details": details or {},
    }
    if event_id is not None:
        body["event_id"] = event_id
    return json.dumps(body).encode()


def sign(raw: bytes, secrets: str | Iterable[str] = WEBHOOK_SECRET, at: int | None = None) -> str:
    return signature_header(secrets, raw, at if at is not None else int(time.time()))


@dataclass
class Stack:
    harness: ProcessorHarness
    gateway: LiveGateway
    client: Client
    processor: RunningProcessor | None = None

    def processor_metric(self, name: str) -> float:
        """The sum of every sample called `name` (e.g. processor_anomalies_total) of the stack's processor."""
        assert self.processor is not None
        return sum(sample.value for family in self.processor.app.metrics.registry.collect()
                   for sample in family.samples if sample.name == name)

    def gateway_metric(self, name: str, **labels: str) -> float:
        value = self.gateway.app[HANDLERS].metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    def publish(self, proposal: dict[str, Any]) -> None:
        self.harness.publish_proposal(proposal)

    def wait_execution(self, execution_id: str, predicate: Any, timeout_s: float = 30) -> dict[str, Any]:
        """GET the execution until `predicate(body)` holds."""
        def check() -> dict[str, Any] | None:
            response = self.client.get(f"/rebalance/executions/{execution_id}")
            body: dict[str, Any] = response.json()
            return body if response.status_code == 200 and predicate(body) else None
        found: dict[str, Any] = wait_until(check, timeout_s, interval_s=0.05, what=f"execution {execution_id} to match")
        return found


class ExecutionOms(ScriptedOms):
    """`ScriptedOms` answering only one execution's instructions (the stack is shared by tests)."""

    def __init__(self, harness: ProcessorHarness, execution_id: str, **options: Any) -> None:
        super().__init__(harness, execution_id=execution_id, **options)


class TracingOms(ExecutionOms):
    """An OMS adapter that propagates trace context as W3C asks: each order event it publishes
    carries the `traceparent` (and `tracestate`) of the instruction about its ticket."""

    def pump(self) -> int:
        harness = self.harness
        harness.outputs.poll(0.1)
        topic = harness.topics.trade_tickets
        mine = [(message, record) for message, record in zip(harness.outputs.raw[topic], harness.outputs.records[topic],
                                                              strict=True)
                if record["execution_id"] == self.execution_id]
        new = mine[self._seen:]
        self._seen = len(mine)
        for message, instruction in new:
            trace = [(k, v) for k, v in message.headers() or () if k in ("traceparent", "tracestate")]
            ticket = translate.ticket_from_record(instruction["ticket"])
            if instruction["instruction"] == "SUBMIT":
                self.provider.submit_tickets(instruction["execution_id"], [ticket])
            else:
                self.provider.cancel_ticket(ticket.ticket_id)
            for event in self.provider.drain_events():
                value = serde.encode("OrderEvent", translate.order_event_to_record(event))
                harness.producer.produce(harness.topics.order_events, key=event.execution_id.encode(), value=value,
                                         headers=trace)
        harness.producer.flush(10)
        return len(new)


@contextmanager
def running_stack(bootstrap: str, base_dir: Path, **config_overrides: Any) -> Iterator[Stack]:
    """One processor (in a thread) and one gateway on a loopback port, stopped on exit; tests
    sharing it isolate themselves by their own proposal ids and idempotency keys."""
    harness = ProcessorHarness(bootstrap, base_dir)
    gateway = None
    try:
        processor = harness.start("p1")
        gateway = LiveGateway(gateway_config(harness, **config_overrides))
        gateway.wait_ready()
        yield Stack(harness, gateway, Client(gateway.url), processor)
    finally:
        if gateway is not None:
            gateway.stop()
        harness.close()


def order_events_reader(harness: ProcessorHarness) -> TopicReader:
    """Every committed record of the harness's order-events topic, from its beginning."""
    return TopicReader(harness.bootstrap, {harness.topics.order_events: "OrderEvent"})


def trace_id_of(headers: Iterable[tuple[str, Any]] | None) -> str | None:
    """The trace id of a record's traceparent header, if it has exactly one."""
    values = [bytes(v).decode() for k, v in headers or () if k == "traceparent" and v is not None]
    return values[0].split("-")[1] if len(values) == 1 and values[0].count("-") == 3 else None


# -- raw sockets, for the connection limits ----------------------------------------------------------

GIVE_UP_S = 20.0  # a test's own bound for what the gateway must do within its (short) timeouts


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=GIVE_UP_S)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (bounded by GIVE_UP_S)."""
    received = b""
    sock.settimeout(GIVE_UP_S)
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def all_closed_by_server(sockets: list[socket.socket]) -> dict[socket.socket, bytes]:
    """Wait (bounded) until the server has closed every socket; what each received."""
    selector = selectors.DefaultSelector()
    received = {sock: b"" for sock in sockets}
    for sock in sockets:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    deadline = time.monotonic() + GIVE_UP_S
    open_count = len(sockets)
    while open_count and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.5):
            ready = key.fileobj
            assert isinstance(ready, socket.socket)
            try:
                chunk = ready.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if chunk:
                received[ready] += chunk
            else:
                selector.unregister(ready)
                open_count -= 1
    selector.close()
    assert open_count == 0, f"{open_count} connections still open after {GIVE_UP_S}s"
    return received
