"""W3C trace context and correlation ids through the gateway without Kafka: the caller's
traceparent continued on the commands, a new trace when there is none, trace ids on the log
lines, and webhook events carrying their execution's correlation id and create trace."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict

from gateway import logging_context
from gateway.app import create_app
from gateway.metrics import GatewayMetrics
from gateway.read_model import ReadModel
from gateway.read_store import Origin
from gateway.webhook import signature_header
from kafka_client.settings import KafkaSettings
from testkit.gateway_fakes import AUTH, SECRET, FakeBackend, config, run, state_change
from wire import examples

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"
CREATE_TRACE = "0af7651916cd43dd8448eb211c80319c"
CREATE_TRACEPARENT = f"00-{CREATE_TRACE}-b7ad6b7169203331-01"
BODY = {"proposal_id": "prop_123", "version_no": 2, "execution_policy": {"max_slippage_bps": "25"},
        "actor": {"channel": "ADVISOR_APP"}}


def traceparent_of(headers: list[tuple[str, bytes]]) -> tuple[str, str]:
    """(trace id, span id) of the one traceparent header."""
    [value] = [v.decode() for name, v in headers if name == "traceparent"]
    version, trace_id, span_id, _flags = value.split("-")
    assert version == "00"
    return trace_id, span_id


def create(headers: dict[str, str] | CIMultiDict[str]) -> tuple[int, FakeBackend, CIMultiDict[str]]:
    backend = FakeBackend(lambda command: None)

    async def scenario(client: TestClient) -> tuple[int, CIMultiDict[str]]:
        sent = CIMultiDict({**AUTH, "Content-Type": "application/json", "Idempotency-Key": "key-trace"})
        sent.extend(headers)
        response = await client.post("/rebalance/executions", data=json.dumps(BODY).encode(), headers=sent)
        return response.status, CIMultiDict(response.headers)

    status, response_headers = run(create_app(config(result_timeout_s=0.1), backend=backend), scenario)
    return status, backend, response_headers


def test_create_continues_the_callers_traceparent_on_its_command() -> None:
    status, backend, _ = create({"traceparent": TRACEPARENT, "tracestate": "vendor=1", "X-Correlation-Id": "corr-t1"})
    assert status == 202
    [headers] = backend.publisher.headers
    trace_id, span_id = traceparent_of(headers)
    assert trace_id == TRACE and span_id != "00f067aa0ba902b7"  # a child span: the gateway's publish
    assert ("tracestate", b"vendor=1") in headers
    assert ("correlation_id", b"corr-t1") in headers


@pytest.mark.parametrize("traceparent", [None, "garbage", f"ff-{TRACE}-00f067aa0ba902b7-01",
                                         "00-00000000000000000000000000000000-00f067aa0ba902b7-01"])
def test_create_without_a_valid_traceparent_starts_a_new_trace(traceparent: str | None) -> None:
    traces = []
    for _ in range(2):
        _, backend, _ = create({} if traceparent is None else {"traceparent": traceparent})
        traces.append(traceparent_of(backend.publisher.headers[0])[0])
    assert traces[0] != traces[1] and TRACE not in traces
    assert all(len(trace) == 32 and int(trace, 16) for trace in traces)


def test_repeated_traceparent_is_ignored_not_refused() -> None:
    status, backend, _ = create(CIMultiDict([("traceparent", TRACEPARENT), ("traceparent", CREATE_TRACEPARENT)]))
    assert status == 202
    assert traceparent_of(backend.publisher.headers[0])[0] not in (TRACE, CREATE_TRACE)


def test_log_lines_of_a_request_carry_its_trace_id_beside_the_correlation_id(caplog: pytest.LogCaptureFixture) -> None:
    for kind in (logging_context.CorrelationIdFilter, logging_context.TraceContextFilter):
        caplog.handler.addFilter(kind())
    with caplog.at_level(logging.INFO):
        _, backend, _ = create({"traceparent": TRACEPARENT, "X-Correlation-Id": "corr-log-t"})
    lines = [r for r in caplog.records if r.name.startswith("gateway")]
    assert {r.getMessage() for r in lines} >= {"create execution"}
    assert all((getattr(r, "trace_id", None), getattr(r, "correlation_id", None)) == (TRACE, "corr-log-t")
               for r in lines)
    assert traceparent_of(backend.publisher.headers[0])[0] == TRACE


# -- webhook events -------------------------------------------------------------------------------

SELL = examples.ticket_id("oi_sell_1")


def event(**changes: Any) -> bytes:
    return json.dumps({"source": "OMS_X", "event_type": "ORDER_ACCEPTED", "external_order_id": "OMS-1",
                       "ticket_id": SELL, "occurred_at": "2026-02-18T10:00:00Z", **changes}).encode()


def deliver(origin: Origin, headers: dict[str, str]) -> tuple[int, FakeBackend, CIMultiDict[str]]:
    backend = FakeBackend()
    backend.read_model.apply(state_change("exec_t1"), origin=origin)
    raw = event(event_id="rpt-t1")

    async def scenario(client: TestClient) -> tuple[int, CIMultiDict[str]]:
        response = await client.post("/rebalance/executions/exec_t1/events", data=raw, headers={
            "Content-Type": "application/json", "X-Signature": signature_header(SECRET, raw), **headers})
        return response.status, CIMultiDict(response.headers)

    status, response_headers = run(create_app(config(), backend=backend), scenario)
    return status, backend, response_headers


CREATE_ORIGIN = Origin("corr-create-9", (("traceparent", CREATE_TRACEPARENT.encode()),), from_create=True)


def test_webhook_event_carries_its_executions_correlation_id_and_continues_the_create_trace() -> None:
    status, backend, response_headers = deliver(CREATE_ORIGIN, {})
    assert status == 202
    [(_, _, _, correlation_id)] = backend.publisher.published
    assert correlation_id == "corr-create-9"  # so a create's correlation id reaches its fills
    assert response_headers["X-Correlation-Id"] == "corr-create-9"  # the call adopted it: none was sent
    assert traceparent_of(backend.publisher.headers[0])[0] == CREATE_TRACE


def test_webhook_with_its_own_correlation_id_and_traceparent_keeps_them_for_the_call() -> None:
    status, backend, response_headers = deliver(CREATE_ORIGIN, {"X-Correlation-Id": "corr-oms-3",
                                                                 "traceparent": TRACEPARENT})
    assert status == 202
    assert response_headers["X-Correlation-Id"] == "corr-oms-3"
    assert backend.publisher.published[0][3] == "corr-create-9"  # the record still names the execution's
    assert traceparent_of(backend.publisher.headers[0])[0] == TRACE  # the OMS propagated a trace: continue it


def test_webhook_for_an_execution_of_unknown_origin_uses_the_calls_own_ids() -> None:
    status, backend, response_headers = deliver(Origin(), {})
    assert status == 202
    assert backend.publisher.published[0][3] == response_headers["X-Correlation-Id"]
    assert traceparent_of(backend.publisher.headers[0])[0] not in (TRACE, CREATE_TRACE)


# -- the read model keeps each execution's origin ---------------------------------------------------


class Message:
    """What the read model's consumer reads from confluent-kafka, for `_fold`."""

    def __init__(self, change: dict[str, Any], headers: list[tuple[str, bytes]] | None = None) -> None:
        from wire import serde

        self._value = serde.encode("ExecutionStateChange", change)
        self._headers = headers

    def error(self) -> None:
        return None

    def value(self) -> bytes:
        return self._value

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers

    def topic(self) -> str:
        return "execution-state-changes"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 0


class NoPositions:
    def position(self, partitions: list[Any]) -> list[Any]:
        return []


def change(execution_id: str, sequence: int, correlation_id: str | None, cause: str = "COMMAND") -> dict[str, Any]:
    record = dict(state_change(execution_id, sequence))
    record.update(correlation_id=correlation_id, cause={"kind": cause, "id": f"c{sequence}"})
    return record


@pytest.fixture
def model() -> Iterator[ReadModel]:
    built = ReadModel(KafkaSettings("127.0.0.1:1"), "execution-state-changes", "execution-snapshots", "c",
                      metrics=GatewayMetrics())  # a temporary state directory, removed by close()
    yield built
    built.close()


def fold(model: ReadModel, *messages: Message) -> None:
    model._fold(list(messages), NoPositions(), [], {})  # noqa: SLF001 - the consumer thread's step, without Kafka


def test_read_model_keeps_the_creates_correlation_id_and_trace_through_later_changes(model: ReadModel) -> None:
    create_headers = [("correlation_id", b"corr-a"), ("traceparent", CREATE_TRACEPARENT.encode())]
    fold(model, Message(change("exec_a", 1, "corr-a"), create_headers),
         Message(change("exec_a", 2, "corr-cancel", "COMMAND")))  # one batch
    fold(model, Message(change("exec_a", 3, "corr-a", "ORDER_EVENT"),
                        [("traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01")]))
    held = model.get("exec_a")
    assert held is not None and held.sequence == 3
    assert held.origin == Origin("corr-a", (("traceparent", CREATE_TRACEPARENT.encode()),), from_create=True)


def test_read_model_without_the_first_change_takes_the_correlation_id_an_order_event_change_names(
        model: ReadModel) -> None:
    fold(model, Message(change("exec_b", 7, "corr-cancel")), Message(change("exec_b", 8, "corr-b", "ORDER_EVENT")))
    held = model.get("exec_b")
    assert held is not None and held.origin == Origin("corr-b")
