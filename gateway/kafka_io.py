"""Shared pieces of the gateway's Kafka clients: configs, topic discovery, a polling thread.

confluent-kafka clients block, so each runs in its own daemon thread; results reach the
asyncio loop only through `loop.call_soon_threadsafe`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from confluent_kafka import Consumer, TopicPartition

from kafka_client.settings import KafkaSettings

log = logging.getLogger(__name__)
# librdkafka's own log lines, through Python logging (JSON like the rest) instead of raw stderr.
KAFKA_LOG = logging.getLogger("gateway.kafka")


def assign_only_consumer_config(kafka: KafkaSettings, client_id: str) -> dict[str, object]:
    """A read_committed consumer that only uses assign(): no group membership, no commits."""
    return {
        **kafka.base_config(),
        "client.id": client_id,
        "logger": KAFKA_LOG,
        "group.id": f"{client_id}-unused",  # required by librdkafka; never joined (assign only)
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "isolation.level": "read_committed",
        "enable.partition.eof": False,
        "fetch.wait.max.ms": 50,
    }


def producer_config(kafka: KafkaSettings, client_id: str) -> dict[str, object]:
    return {
        **kafka.base_config(),
        "client.id": client_id,
        "logger": KAFKA_LOG,
        "enable.idempotence": True,  # acks=all, no duplicates or reordering on retries
        # The Java clients' partitioner, as every producer of these topics must use (docs/wire.md).
        "partitioner": "murmur2_random",
        "linger.ms": 2,
        "delivery.timeout.ms": 15_000,
        "compression.type": "lz4",
    }


def wait_for_partitions(consumer: Consumer, topic: str, stopped: Callable[[], bool],
                        timeout_s: float = 10.0) -> list[TopicPartition] | None:
    """The topic's partitions once it exists (the processor creates the topics); None if stopped."""
    delay = 0.2
    while not stopped():
        try:
            metadata = consumer.list_topics(topic, timeout=timeout_s)
            described = metadata.topics.get(topic)
            if described is not None and described.error is None and described.partitions:
                return [TopicPartition(topic, p) for p in sorted(described.partitions)]
            log.info("waiting for topic %s to exist", topic)
        except Exception as error:  # broker unreachable: keep trying, readiness says so
            log.warning("cannot read metadata of %s: %s", topic, error)
        time.sleep(delay)
        delay = min(delay * 2, 5.0)
    return None


def end_offsets(consumer: Consumer, partitions: list[TopicPartition], timeout_s: float = 10.0) -> dict[int, int]:
    """Current high watermark of each partition (a broker round trip, not the cache)."""
    return {
        tp.partition: consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=timeout_s,
                                                     cached=False)[1]
        for tp in partitions
    }


class PollThread:
    """Runs `body(stopped)` in a daemon thread; `stop()` asks it to end and waits."""

    def __init__(self, name: str, body: Callable[[Callable[[], bool]], None]) -> None:
        self._stop = threading.Event()
        self._body = body
        self.failed: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            self._body(self._stop.is_set)
        except BaseException as error:  # noqa: BLE001 - reported through health
            self.failed = error
            log.exception("%s stopped on an error", self._thread.name)

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout_s: float = 15.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
