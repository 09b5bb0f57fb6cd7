"""Shared pieces of the gateway's Kafka clients: configs, topic discovery, a polling thread.

confluent-kafka clients block, so each runs in its own daemon thread; results reach the
asyncio loop only through `loop.call_soon_threadsafe`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, IsolationLevel, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from kafka_client.settings import ClientConfigError, KafkaSettings

log = logging.getLogger(__name__)
# librdkafka's own log lines, through Python logging (JSON like the rest) instead of raw stderr.
KAFKA_LOG = logging.getLogger("gateway.kafka")


# What the gateway's guarantees rest on (`kafka_client.settings.REQUIRED_WHY` says why): an operator's
# KAFKA_CLIENT_* / --kafka-config setting one of these to another value stops the start with the
# reason (`ClientConfigError`). Every other property the operator sets wins over the defaults below.
CONSUMER_REQUIRED: dict[str, object] = {
    "isolation.level": "read_committed",  # never an aborted state change, result or table row
    "enable.auto.commit": False,  # assign-only consumers commit nothing
    "enable.auto.offset.store": False,
}
PRODUCER_REQUIRED: dict[str, object] = {
    "enable.idempotence": True,  # acks=all, no duplicate or reordered command or order event on retries
    "partitioner": "murmur2_random",  # as every producer of these topics (co-partitioning, docs/wire.md)
}


def assign_only_consumer_config(kafka: KafkaSettings, client_id: str, **defaults: object) -> dict[str, object]:
    """A read_committed consumer that only uses assign(): no group membership, no commits."""
    return {**kafka.client({
        "client.id": client_id,
        "group.id": f"{client_id}-unused",  # required by librdkafka; never joined (assign only)
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        "fetch.wait.max.ms": 50,
        **defaults,
    }, CONSUMER_REQUIRED), "logger": KAFKA_LOG}


def producer_config(kafka: KafkaSettings, client_id: str) -> dict[str, object]:
    return {**kafka.client({
        "client.id": client_id,
        "linger.ms": 2,
        "delivery.timeout.ms": 15_000,
        "compression.type": "lz4",
    }, PRODUCER_REQUIRED), "logger": KAFKA_LOG}


def client_settings_problems(kafka: KafkaSettings) -> list[str]:
    """Each operator property that conflicts with what the gateway's clients require, naming its
    variable and why (`ClientConfigError`'s lines); checked when the configuration is loaded."""
    problems: list[str] = []
    for build in (producer_config, assign_only_consumer_config):
        try:
            build(kafka, "check")
        except ClientConfigError as error:
            problems += [line for line in str(error).split("; ") if line not in problems]
    return problems


def admin_config(kafka: KafkaSettings) -> dict[str, Any]:  # the logger is an object, not a librdkafka scalar
    return {**kafka.base_config(), "logger": KAFKA_LOG}


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


def end_offsets(consumer: Consumer, partitions: list[TopicPartition], timeout_s: float = 10.0) -> dict[tuple[str, int], int]:
    """Current high watermark of each partition (a broker round trip, not the cache)."""
    return {
        (tp.topic, tp.partition): consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition),
                                                                 timeout=timeout_s, cached=False)[1]
        for tp in partitions
    }


class PartitionOffsets:
    """The first and the end offsets of partitions, asked in one request per broker on an admin
    client's own connection. (A consumer's `get_watermark_offsets` asks one partition at a time
    on the connection its fetches use, and a broker answers a connection's requests in order: each
    query waits behind the fetch's long poll, `fetch.wait.max.ms`.)"""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.admin = AdminClient(admin_config(kafka))

    def _ask(self, partitions: list[TopicPartition], spec: OffsetSpec, timeout_s: float) -> dict[tuple[str, int], Any]:
        futures = self.admin.list_offsets({TopicPartition(tp.topic, tp.partition): spec for tp in partitions},
                                          isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=timeout_s)
        return {(tp.topic, tp.partition): future for tp, future in futures.items()}

    def _query(self, partitions: list[TopicPartition], spec: OffsetSpec, timeout_s: float) -> dict[tuple[str, int], int]:
        return {key: future.result().offset for key, future in self._ask(partitions, spec, timeout_s).items()}

    def ends_async(self, partitions: list[TopicPartition], timeout_s: float = 10.0) -> dict[tuple[str, int], Any]:
        """`ends`, as concurrent futures of ListOffsetsResultInfo (does not block)."""
        return self._ask(partitions, OffsetSpec.latest(), timeout_s)

    def ends(self, partitions: list[TopicPartition], timeout_s: float = 10.0) -> dict[tuple[str, int], int]:
        """Each partition's last stable offset: where a read_committed consumer that has read
        everything committed so far stands."""
        return self._query(partitions, OffsetSpec.latest(), timeout_s)

    def firsts(self, partitions: list[TopicPartition], timeout_s: float = 10.0) -> dict[tuple[str, int], int]:
        """Each partition's first offset held (after retention)."""
        return self._query(partitions, OffsetSpec.earliest(), timeout_s)


def retrying(call: Callable[[], Any], stopped: Callable[[], bool], attempts: int | None = None) -> Any:
    """`call()`, retried on Kafka errors (e.g. NOT_LEADER_FOR_PARTITION just after a topic was
    created) with a growing delay; None if stopped or out of attempts."""
    delay = 0.1
    tried = 0
    while not stopped():
        try:
            return call()
        except KafkaException as error:
            tried += 1
            if attempts is not None and tried >= attempts:
                log.warning("giving up after %d attempts: %s", tried, error)
                return None
            log.warning("retrying in %.1fs: %s", delay, error)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
    return None


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
