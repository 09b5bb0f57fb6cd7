"""The dead-letters page's feed: the most recent dead letters, decoded, in a bounded ring.

One consumer (assign only, no group, `read_committed`: the processor writes dead letters in the
transaction that consumed the bad input, so an aborted attempt is never shown) reads every
partition of the dead-letters topic from `capacity` records before its end and keeps going, in a
thread of its own. Each record is decoded with the DeadLetter schema, then its original value
with the codec of its original topic (`wire.formats`, as the processor would have read it) where
that topic is one of ours and the value decodes; else the page says why not and shows the bytes'
size and hash. A record that does not decode as a DeadLetter at all is kept too, as such.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, TopicPartition

from gateway.kafka_io import PartitionOffsets, PollThread, assign_only_consumer_config, retrying, wait_for_partitions
from kafka_client.records import coordinates
from kafka_client.settings import KafkaSettings
from wire import formats
from wire.errors import DecodeError
from wire.topics import TOPICS, TopicNames

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeadLetterView:
    """One dead letter as the page shows it."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    record: dict[str, Any] | None  # the DeadLetter, bytes fields as text or base64; None if undecodable
    original: str | None  # the original value decoded, as indented JSON
    note: str  # why `original` (or `record`) is missing, else ""

    @property
    def failed_at(self) -> str:
        return str(self.record.get("failed_at")) if self.record else ""


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(raw).decode("ascii")
    raise TypeError(type(value).__name__)


def pretty(value: Any) -> str:
    return orjson.dumps(value, default=_json_default, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()


def _printable(record: Mapping[str, Any]) -> dict[str, Any]:
    printable: dict[str, Any] = orjson.loads(orjson.dumps(record, default=_json_default))
    return printable


class Decoder:
    """DeadLetter records and their originals, by the topics' names as configured here."""

    def __init__(self, topics: TopicNames, dead_letters_topic: str) -> None:
        self._dead_letter = formats.value_codec("dead-letters", dead_letters_topic)
        self._kinds = {getattr(topics, topic.kind.replace("-", "_")): topic.kind for topic in TOPICS}

    def view(self, topic: str, partition: int, offset: int, timestamp_ms: int | None, value: bytes | None) -> DeadLetterView:
        if value is None:
            return DeadLetterView(topic, partition, offset, timestamp_ms, None, None, "a tombstone, not a dead letter")
        try:
            record = self._dead_letter.decode(value, topic=topic, partition=partition, offset=offset)
        except DecodeError as error:
            return DeadLetterView(topic, partition, offset, timestamp_ms, None, None,
                                  f"this record is not a DeadLetter: {error}")
        original, note = self._original(record)
        shown = {k: v for k, v in record.items() if k != "original_value"}
        return DeadLetterView(topic, partition, offset, timestamp_ms, _printable(shown), original, note)

    def _original(self, record: Mapping[str, Any]) -> tuple[str | None, str]:
        value = record.get("original_value")
        if value is None:
            if record.get("original_value_truncated"):
                return None, (f"left out for its size ({record.get('original_value_size')} bytes): read it at "
                              f"{record['original_topic']}[{record['original_partition']}]@{record['original_offset']}")
            return None, "no value (a tombstone)"
        kind = self._kinds.get(record["original_topic"])
        if kind is None:
            return None, f"{record['original_topic']} is not a topic this gateway knows the schema of"
        try:
            decoded = formats.value_codec(kind, record["original_topic"]).decode(
                bytes(value), topic=record["original_topic"], partition=record["original_partition"],
                offset=record["original_offset"])
        except DecodeError as error:
            return None, f"does not decode as {kind}: {error}"
        except Exception as error:  # a registry that cannot be reached: say so, never fail the page
            return None, f"could not be decoded: {error}"
        return pretty(decoded), ""


class DeadLetterFeed:
    def __init__(self, kafka: KafkaSettings, topics: TopicNames, client_id: str, capacity: int) -> None:
        self._kafka = kafka
        self._topic = topics.dead_letters
        self._decoder = Decoder(topics, topics.dead_letters)
        self._config = assign_only_consumer_config(kafka, client_id)
        self.capacity = capacity
        self._ring: deque[DeadLetterView] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._thread: PollThread | None = None
        self.read = 0  # records read since start
        self.listener: Callable[[], None] | None = None  # called on the loop when a dead letter arrives
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def topic(self) -> str:
        return self._topic

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = PollThread("console-dead-letters", self._run)
        self._thread.start()

    @property
    def healthy(self) -> bool:
        return self._thread is not None and self._thread.alive

    def recent(self) -> list[DeadLetterView]:
        """Newest first."""
        with self._lock:
            return list(reversed(self._ring))

    def _run(self, stopped: Callable[[], bool]) -> None:
        consumer = Consumer(self._config)
        try:
            partitions = wait_for_partitions(consumer, self._topic, stopped)
            if partitions is None:
                return
            offsets = PartitionOffsets(self._kafka)
            ends = retrying(lambda: offsets.ends(partitions), stopped)
            if ends is None:
                return
            # The last `capacity` records of each partition at most: the ring keeps that many overall.
            consumer.assign([TopicPartition(tp.topic, tp.partition, max(0, ends[(tp.topic, tp.partition)] - self.capacity))
                             for tp in partitions])
            while not stopped():
                views = []
                for message in consumer.consume(500, timeout=0.2):
                    error = message.error()
                    if error is not None:
                        if error.code() != KafkaError._PARTITION_EOF:
                            log.warning("dead-letters consumer error: %s", error)
                        continue
                    _, timestamp = message.timestamp()
                    topic, partition, offset = coordinates(message)
                    views.append(self._decoder.view(topic, partition, offset, timestamp if timestamp > 0 else None,
                                                    message.value()))
                if views:
                    views.sort(key=lambda v: (v.timestamp_ms or 0, v.partition, v.offset))
                    with self._lock:
                        self._ring.extend(views)
                        self.read += len(views)
                    if self.listener is not None and self._loop is not None:
                        self._loop.call_soon_threadsafe(self.listener)
        finally:
            consumer.close()

    def close(self) -> None:
        if self._thread is not None:
            self._thread.stop()
