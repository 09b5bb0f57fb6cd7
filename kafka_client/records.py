"""Kafka records, typed: where a consumed record came from, its value decoded with a wire codec,
and headers as `Producer.produce` takes them.

confluent-kafka types every field of a `Message` as optional (an error event has no topic or
offset); a record the consumer delivered without error always has them. These helpers say so
once, at the edge, instead of at every call site. They type-check the same against a confluent-kafka
with type stubs (the newest, which `bin/setup` installs) and one without (2.12, which the benchmarks'
quixstreams pins).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, cast

from confluent_kafka import Message

# Headers as `Producer.produce(headers=...)` takes them (a list is invariant: a list[tuple[str, bytes]]
# is not one of these, a copy typed as one is).
ProduceHeaders = list[tuple[str, str | bytes | None]]


class ValueCodec(Protocol):
    def decode(self, data: bytes, *, topic: str, partition: int, offset: int) -> dict[str, Any]: ...


def coordinates(message: Message) -> tuple[str, int, int]:
    """(topic, partition, offset) of a record delivered without error."""
    return cast(str, message.topic()), cast(int, message.partition()), cast(int, message.offset())


def decode_value(codec: ValueCodec, message: Message) -> dict[str, Any]:
    """The record's value decoded (a tombstone or garbage raises the codec's DecodeError)."""
    topic, partition, offset = coordinates(message)
    return codec.decode(cast(bytes, message.value()), topic=topic, partition=partition, offset=offset)


def produce_headers(headers: Iterable[tuple[str, bytes]] | None) -> ProduceHeaders | None:
    """`headers` for `Producer.produce`: None when there are none."""
    produced: ProduceHeaders = list(headers or ())
    return produced or None
