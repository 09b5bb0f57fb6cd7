"""Consumed records, typed: where a record came from, and its value decoded with a wire codec.

confluent-kafka types every field of a `Message` as optional (an error event has no topic or
offset); a record the consumer delivered without error always has them. These helpers say so
once, at the edge, instead of at every call site.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

from confluent_kafka import Message


class ValueCodec(Protocol):
    def decode(self, data: bytes, *, topic: str, partition: int, offset: int) -> dict[str, Any]: ...


def coordinates(message: Message) -> tuple[str, int, int]:
    """(topic, partition, offset) of a record delivered without error."""
    return cast(str, message.topic()), cast(int, message.partition()), cast(int, message.offset())


def decode_value(codec: ValueCodec, message: Message) -> dict[str, Any]:
    """The record's value decoded (a tombstone or garbage raises the codec's DecodeError)."""
    topic, partition, offset = coordinates(message)
    return codec.decode(cast(bytes, message.value()), topic=topic, partition=partition, offset=offset)
