"""Publishing to Kafka: execution commands (create, cancel) and webhook order events.

One idempotent producer (`enable.idempotence`, `partitioner=murmur2_random`, as every producer
of these topics must) polled by a background thread. `publish` hands the record to librdkafka
(a non-blocking call) and awaits its delivery report, which the poll thread passes to the
asyncio loop with `call_soon_threadsafe`. Records are keyed by `execution_id` and carry the
headers the handler gives: `correlation_id`, and `traceparent` / `tracestate`
(`observability.tracing.kafka_headers`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime
from typing import Any

from confluent_kafka import KafkaError, Producer

from execution_domain import Actor, ExecutionPolicy, ProposalArtifact
from gateway.kafka_io import PollThread, producer_config
from kafka_client.settings import KafkaSettings
from wire import formats, serde
from wire import records as translate
from wire.topics import TopicNames

log = logging.getLogger(__name__)

_COMMAND = serde.codec("ExecutionCommand")
_ORDER_EVENT = serde.codec("OrderEvent")


class PublishError(RuntimeError):
    """Kafka did not take the record (queue full, broker unreachable past the delivery timeout)."""


def new_command_id() -> str:
    return "cmd_" + uuid.uuid4().hex


def create_command(
    *,
    command_id: str,
    execution_id: str,
    correlation_id: str,
    issued_at: datetime,
    idempotency_key: str,
    request_hash: str,
    proposal_id: str,
    version_no: int,
    policy: ExecutionPolicy,
    actor: Actor,
    artifact: ProposalArtifact | None,
) -> bytes:
    """An encoded CREATE_EXECUTION ExecutionCommand."""
    return _COMMAND.encode({
        "command_id": command_id,
        "command_type": translate.CREATE_EXECUTION,
        "execution_id": execution_id,
        "correlation_id": correlation_id,
        "issued_at": issued_at,
        "payload": {
            "idempotency_key": idempotency_key,
            "request_hash": request_hash,
            "proposal_id": proposal_id,
            "version_no": version_no,
            "execution_policy": translate.policy_to_record(policy),
            "actor": translate.actor_to_record(actor),
            "artifact": None if artifact is None else translate.artifact_to_record(artifact),
        },
    })


def cancel_command(*, command_id: str, execution_id: str, correlation_id: str, issued_at: datetime,
                   actor: Actor, reason: str | None) -> bytes:
    """An encoded CANCEL_EXECUTION ExecutionCommand."""
    return _COMMAND.encode({
        "command_id": command_id,
        "command_type": translate.CANCEL_EXECUTION,
        "execution_id": execution_id,
        "correlation_id": correlation_id,
        "issued_at": issued_at,
        "payload": {"reason": reason, "actor": translate.actor_to_record(actor)},
    })


def order_event_value(record: dict[str, Any]) -> bytes:
    return _ORDER_EVENT.encode(record)


class Publisher:
    def __init__(self, kafka: KafkaSettings, client_id: str, topics: TopicNames | None = None) -> None:
        self._config = producer_config(kafka, client_id)
        # The values above are single-object encoded; with a schema registry (SCHEMA_REGISTRY_URL) the
        # topics we write take the Confluent framing instead: same Avro body, another header.
        written = {} if topics is None else {"execution-commands": topics.execution_commands,
                                             "order-events": topics.order_events}
        self._written = written
        self._framing = {topic: formats.reframer(kind, topic) for kind, topic in written.items()}
        self._producer: Producer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: PollThread | None = None
        self.fatal_error: str | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        formats.register_schemas(self._written)  # no-op without a registry; a refusal fails the start-up
        self._loop = loop
        self._producer = Producer({**self._config, "error_cb": self._on_error})
        self._thread = PollThread("gateway-producer", self._poll)
        self._thread.start()

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            self.fatal_error = str(error)
            log.error("producer fatal error: %s", error)
        else:
            log.warning("producer error: %s", error)

    def _poll(self, stopped: Any) -> None:
        producer = self._producer
        assert producer is not None
        while not stopped():
            producer.poll(0.1)
        producer.flush(5)

    @property
    def healthy(self) -> bool:
        return self._thread is not None and self._thread.alive and self.fatal_error is None

    async def publish(self, topic: str, key: str, value: bytes,
                      headers: list[tuple[str, str | bytes | None]]) -> None:
        """Produce and wait for the delivery report; PublishError if the record was not written."""
        producer, loop = self._producer, self._loop
        if producer is None or loop is None or not self.healthy:
            raise PublishError("producer not running")
        delivered: asyncio.Future[None] = loop.create_future()

        def on_delivery(error: KafkaError | None, _message: Any) -> None:  # the poll thread
            loop.call_soon_threadsafe(_settle, delivered, error)

        frame = self._framing.get(topic)
        try:
            producer.produce(topic, value=value if frame is None else frame(value), key=key.encode("utf-8"),
                             headers=headers or None, on_delivery=on_delivery)
        except BufferError as error:
            raise PublishError("producer queue full") from error
        except Exception as error:  # KafkaException: e.g. unknown topic in a fatal state
            raise PublishError(str(error)) from error
        await delivered

    def close(self) -> None:
        if self._thread is not None:
            self._thread.stop()
        self._producer = None  # librdkafka's threads end when the handle is collected


def _settle(future: asyncio.Future[None], error: KafkaError | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(PublishError(str(error)))
