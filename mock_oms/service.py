"""The mock OMS process: consumes trade-tickets, answers on order-events or the gateway's webhook.

Instructions are read with `read_committed` (an OMS must never act on an aborted release);
each answer is scheduled at its simulated latency and delivered when due.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
from confluent_kafka import Consumer, Producer

from execution_domain import OrderEvent
from gateway.webhook import SIGNATURE_HEADER, signature_header
from kafka_client.records import decode_value, produce_headers
from kafka_client.settings import ClientConfig
from mock_oms.engine import MockOmsEngine
from observability import tracing
from wire import formats
from wire import records as translate

log = logging.getLogger(__name__)

_TRACES_KEPT = 100_000


Deliver = Callable[[OrderEvent, list[tuple[str, bytes]] | None], None]  # an event and the ticket's trace headers


class KafkaDelivery:
    """Publishes order events the way an OMS adapter does: keyed by execution_id, murmur2."""

    def __init__(self, base_config: ClientConfig, topic: str) -> None:
        self._producer = Producer({**base_config, "partitioner": "murmur2_random", "enable.idempotence": True,
                                   "linger.ms": 2})
        self._topic = topic
        self._codec = formats.value_codec("order-events", topic)  # Confluent framing when SCHEMA_REGISTRY_URL is set
        formats.register_schemas({"order-events": topic})

    def __call__(self, event: OrderEvent, trace: list[tuple[str, bytes]] | None = None) -> None:
        self._producer.produce(self._topic, key=event.execution_id.encode(),
                               value=self._codec.encode(translate.order_event_to_record(event)),
                               headers=produce_headers(trace))
        self._producer.poll(0)

    def flush(self) -> None:
        self._producer.flush(10)


class WebhookDelivery:
    """Delivers order events through the gateway's signed webhook (RFC 5.4 option A), as an
    OMS that calls back over HTTP would: `X-Signature: t=<unix>,v1=<hmac>` over "<t>.<body>"."""

    def __init__(self, gateway_url: str, secret: str, *, timeout_s: float = 10, attempts: int = 5) -> None:
        self._url = gateway_url.rstrip("/")
        self._secret = secret
        self._timeout_s = timeout_s
        self._attempts = attempts
        self.rejected: list[tuple[int, str]] = []

    def __call__(self, event: OrderEvent, trace: list[tuple[str, bytes]] | None = None) -> None:
        body = orjson.dumps(event.to_primitive())
        # The ticket's trace context goes back with the report, as W3C traceparent/tracestate headers.
        trace_headers = {name: value.decode() for name, value in trace or ()}
        for attempt in range(self._attempts):
            request = urllib.request.Request(
                f"{self._url}/rebalance/executions/{event.execution_id}/events", data=body, method="POST",
                headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature_header(self._secret, body),
                         **trace_headers},
            )
            try:
                with urllib.request.urlopen(request, timeout=self._timeout_s):
                    return
            except urllib.error.HTTPError as error:
                if error.code < 500:  # refused: retrying the same body cannot help
                    self.rejected.append((error.code, error.read().decode(errors="replace")))
                    log.warning("webhook refused %s: HTTP %d", event.event_id, error.code)
                    return
            except OSError:
                pass
            time.sleep(0.2 * (attempt + 1))  # gateway busy or restarting: the same body dedups
        raise RuntimeError(f"webhook delivery of {event.event_id} failed after {self._attempts} attempts")

    def flush(self) -> None:
        pass


class MockOmsService:
    def __init__(self, base_config: ClientConfig, *, tickets_topic: str, group_id: str,
                 engine: MockOmsEngine, deliver: Deliver) -> None:
        self._consumer = Consumer({
            **base_config, "group.id": group_id, "isolation.level": "read_committed",
            "auto.offset.reset": "earliest", "enable.auto.commit": True,
        })
        self._consumer.subscribe([tickets_topic])
        self._instructions = formats.value_codec("trade-tickets", tickets_topic)  # reads either framing
        self._engine = engine
        self._deliver = deliver
        self._due: list[tuple[float, int, OrderEvent]] = []
        # ticket_id -> its instruction's trace headers; the oldest forgotten past _TRACES_KEPT tickets.
        self._trace: OrderedDict[str, list[tuple[str, bytes]]] = OrderedDict()
        self._order = itertools.count()
        self.instructions_handled = 0
        self.events_sent = 0

    def run(self, should_stop: Callable[[], bool]) -> None:
        try:
            while not should_stop():
                self.step()
        finally:
            self._consumer.close()

    def step(self, max_wait_s: float = 0.05) -> None:
        wait = max_wait_s if not self._due else min(max_wait_s, max(self._due[0][0] - time.monotonic(), 0))
        for message in self._consumer.consume(100, timeout=wait):
            if message.error():
                continue
            instruction = decode_value(self._instructions, message)
            self.instructions_handled += 1
            trace = tracing.passed_on(message.headers())
            if trace:
                self._trace[instruction["ticket"]["ticket_id"]] = trace
                if len(self._trace) > _TRACES_KEPT:
                    self._trace.popitem(last=False)
            now_wall, now = datetime.now(UTC), time.monotonic()
            for delivery in self._engine.handle(instruction, now_wall):
                heapq.heappush(self._due, (now + delivery.delay_s, next(self._order), delivery.event))
        while self._due and self._due[0][0] <= time.monotonic():
            _, _, event = heapq.heappop(self._due)
            if not self._engine.still_due(event):
                continue
            self._deliver(event, self._trace.get(event.ticket_id))
            self._engine.mark_delivered(event)
            self.events_sent += 1

    @property
    def idle(self) -> bool:
        return not self._due
