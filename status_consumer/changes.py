"""The one place the status consumer and the demo read an `ExecutionStateChange` record.

Everything downstream (the printed lines, the demo's checks) works on `StateChange`. A change
carries only what changed (a DELTA snapshot: the tickets it touched and its own lifecycle rows);
a reader that wants the whole execution passes `views`, and the change is folded into that
execution's `wire.views.ExecutionView` (in sequence order, duplicates dropped), which
`StateChange.snapshot` then shows whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from confluent_kafka import Message

from wire import formats
from wire.views import ExecutionView


@dataclass(frozen=True)
class StateChange:
    execution_id: str
    sequence: int
    status: str  # the execution's status after the change
    record: dict[str, Any]  # the decoded ExecutionStateChange
    view: ExecutionView | None = None  # the execution folded so far, when read with `views`

    @property
    def delta(self) -> dict[str, Any]:
        """What the change carries: the header after it, the tickets it touched, its lifecycle rows."""
        execution: dict[str, Any] = self.record["execution"]
        return execution

    @property
    def snapshot(self) -> dict[str, Any]:
        """The whole execution as folded so far (every ticket, every lifecycle row read), or the
        change's own delta when read without views."""
        return self.delta if self.view is None else self.view.snapshot()


def read_change(message: Message, views: dict[str, ExecutionView] | None = None) -> StateChange:
    """Decode one record of the execution-state-changes topic (single-object, or Confluent framing when
    SCHEMA_REGISTRY_URL is set: `wire.formats`; `wire.errors.DecodeError` if it is not one) and, with
    `views`, fold it into its execution's view."""
    partition, offset, topic = message.partition(), message.offset(), message.topic() or "?"
    codec = formats.value_codec("execution-state-changes", topic)  # either framing with SCHEMA_REGISTRY_URL
    record = codec.decode(message.value() or b"", topic=topic,  # b"": a tombstone, refused
                          partition=-1 if partition is None else partition, offset=-1 if offset is None else offset)
    view = None
    if views is not None:
        view = views.get(record["execution_id"])
        if view is None:
            view = views[record["execution_id"]] = ExecutionView(record["execution_id"])
        view.apply_change(record)
    return StateChange(record["execution_id"], record["sequence"], record["execution"]["status"], record, view)
