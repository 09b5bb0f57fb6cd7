"""The one place the status consumer and the demo read an `ExecutionStateChange` record.

Everything downstream (the printed lines, the demo's checks) works on `StateChange`, so a change
of the contract (e.g. a change that carries only what changed, with the latest snapshot on a
compacted topic) is absorbed here and in `status_consumer.format`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from confluent_kafka import Message

from wire import formats


@dataclass(frozen=True)
class StateChange:
    execution_id: str
    sequence: int
    status: str  # the execution's status after the change
    record: dict[str, Any]  # the decoded ExecutionStateChange

    @property
    def snapshot(self) -> dict[str, Any]:
        """The execution after the change (tickets, lifecycle log)."""
        execution: dict[str, Any] = self.record["execution"]
        return execution


def read_change(message: Message) -> StateChange:
    """Decode one record of the execution-state-changes topic (single-object, or Confluent framing when
    SCHEMA_REGISTRY_URL is set: `wire.formats`); `wire.errors.DecodeError` if it is not one."""
    partition, offset, topic = message.partition(), message.offset(), message.topic() or "?"
    codec = formats.value_codec("execution-state-changes", topic)  # either framing with SCHEMA_REGISTRY_URL
    record = codec.decode(message.value() or b"", topic=topic,  # b"": a tombstone, refused
                          partition=-1 if partition is None else partition, offset=-1 if offset is None else offset)
    return StateChange(record["execution_id"], record["sequence"], record["execution"]["status"], record)
