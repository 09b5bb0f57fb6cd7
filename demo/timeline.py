"""The demo's output: lines that fit 100 columns, and the live timeline of one execution.

State changes are read through `status_consumer.changes.read_change` (the one place that knows
the record's layout) and described by `status_consumer.format`.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer

from status_consumer.changes import StateChange, read_change
from status_consumer.format import change_parts
from wire.views import ExecutionView

WIDTH = 100
TERMINAL = frozenset({"FILLED", "REJECTED", "CANCELLED"})


def say(text: str, indent: int = 3, hanging: int = 4) -> None:
    """Print `text` wrapped to WIDTH columns; continuation lines indented `hanging` more."""
    print(textwrap.fill(text, WIDTH, initial_indent=" " * indent, subsequent_indent=" " * (indent + hanging),
                        break_on_hyphens=False, break_long_words=True))


def timeline_line(change: StateChange) -> str:
    at, parts, cause = change_parts(change.record)
    prefix = f"   {at} #{change.sequence:<3} "
    return textwrap.fill(f"{'; '.join(parts)}  [{cause}]", WIDTH, initial_indent=prefix,
                         subsequent_indent=" " * len(prefix), break_on_hyphens=False)


@dataclass
class Watch:
    """Every committed state change of the demo's topic, kept per execution as it is read."""

    consumer: Consumer
    by_execution: dict[str, list[StateChange]] = field(default_factory=dict)
    printed: dict[str, int] = field(default_factory=dict)  # changes printed, per execution
    views: dict[str, ExecutionView] = field(default_factory=dict)  # each execution folded from its changes

    def poll(self) -> None:
        for message in self.consumer.consume(100, timeout=0.2):
            if message.error():
                continue
            change = read_change(message, self.views)
            self.by_execution.setdefault(change.execution_id, []).append(change)

    def follow(self, execution_id: str, done: Callable[[list[StateChange]], bool], timeout_s: float,
               check: Callable[[], None]) -> list[StateChange]:
        """Print the execution's changes as they come until `done(changes)` or the timeout; its changes."""
        deadline = time.monotonic() + timeout_s
        while True:
            changes = self.by_execution.get(execution_id, [])
            for change in changes[self.printed.get(execution_id, 0):]:
                print(timeline_line(change))
            self.printed[execution_id] = len(changes)
            if (changes and done(changes)) or time.monotonic() > deadline:
                return list(changes)
            check()
            self.poll()

    def status(self, execution_id: str) -> str | None:
        changes = self.by_execution.get(execution_id)
        return changes[-1].status if changes else None


def reached(*statuses: str) -> Callable[[list[StateChange]], bool]:
    """Done once the execution is in one of `statuses`; by default, once it is complete: in a final
    state with no order still working (a REJECTED execution can have a SELL still working at the OMS
    whose fills come later)."""
    if statuses:
        wanted = set(statuses)
        return lambda changes: changes[-1].status in wanted
    return lambda changes: changes[-1].status in TERMINAL and bool(changes[-1].snapshot.get("is_complete", True))


def snapshot_of(changes: list[StateChange]) -> dict[str, Any]:
    return changes[-1].snapshot
