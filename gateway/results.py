"""Waiting for the processor's answers: a consumer of the command-results topic.

Every gateway instance reads every partition (assign, no group), `read_committed`, starting at
the end offsets it finds when it starts (concrete offsets, resolved before it reports ready,
so no answer to a command sent after start-up can be skipped). A handler registers a future
under its command_id *before* publishing the command; the poll thread decodes only records
whose key (the command_id) someone waits for, and resolves the future on the asyncio loop.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from gateway.kafka_io import PollThread, assign_only_consumer_config, end_offsets, retrying, wait_for_partitions
from kafka_client.records import decode_value
from kafka_client.settings import KafkaSettings
from wire import formats
from wire.errors import DecodeError

log = logging.getLogger(__name__)



class ResultWaiter:
    def __init__(self, kafka: KafkaSettings, topic: str, client_id: str) -> None:
        self._config = assign_only_consumer_config(kafka, client_id)
        self._topic = topic
        self._codec = formats.value_codec("command-results", topic)  # either framing (wire.formats)
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}  # owned by the loop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: PollThread | None = None
        self.ready = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = PollThread("gateway-results", self._run)
        self._thread.start()

    @property
    def healthy(self) -> bool:
        return self._thread is not None and self._thread.alive

    @property
    def pending(self) -> int:
        return len(self._pending)

    def expect(self, command_id: str) -> asyncio.Future[dict[str, Any]]:
        """A future for the CommandResult of `command_id`; call before publishing the command."""
        assert self._loop is not None
        future: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        self._pending[command_id] = future
        return future

    def discard(self, command_id: str) -> None:
        self._pending.pop(command_id, None)

    def _resolve(self, command_id: str, record: dict[str, Any]) -> None:  # on the loop
        future = self._pending.pop(command_id, None)
        if future is not None and not future.done():
            future.set_result(record)

    def _run(self, stopped: Any) -> None:
        consumer = Consumer(self._config)
        try:
            partitions = wait_for_partitions(consumer, self._topic, stopped)
            if partitions is None:
                return
            ends = retrying(lambda: end_offsets(consumer, partitions), stopped)
            if ends is None:
                return
            consumer.assign([TopicPartition(topic, p, offset) for (topic, p), offset in ends.items()])
            log.info("waiting for command results on %s from offsets %s", self._topic, ends)
            self.ready = True
            loop = self._loop
            assert loop is not None
            while not stopped():
                for message in consumer.consume(500, timeout=0.05):
                    error = message.error()
                    if error is not None:
                        if error.code() != KafkaError._PARTITION_EOF:
                            log.warning("command-results consumer error: %s", error)
                        continue
                    key = message.key()
                    command_id = key.decode("utf-8", "replace") if key else ""
                    if command_id not in self._pending:
                        continue  # another instance's command, or one that timed out here
                    try:
                        record = decode_value(self._codec, message)
                    except DecodeError as undecodable:
                        log.error("undecodable command result: %s", undecodable, extra={"command_id": command_id})
                        continue
                    loop.call_soon_threadsafe(self._resolve, command_id, record)
        finally:
            self.ready = False
            consumer.close()

    def close(self) -> None:
        if self._thread is not None:
            self._thread.stop()
        for future in self._pending.values():
            if not future.done():
                future.cancel()
        self._pending.clear()
