"""An execution as a consumer of the contracts sees it: state changes and snapshots folded into one view.

A state change carries only what changed (an `ExecutionSnapshot` whose ``content`` is DELTA: the
header and counters after the change, the tickets the change touched, the change's own lifecycle
rows); the execution-snapshots table and command results carry SUMMARY snapshots (every ticket,
no rows); records written before v2 carry FULL snapshots (every ticket and the whole log). This
module folds any sequence of them into the whole picture, with the rules a consumer in any
language follows (docs/wire.md, "State changes and snapshots: rebuilding an execution"):

- apply changes of one execution in ``sequence`` order; a change whose sequence is not above the
  last one applied is a duplicate (drop it);
- the header and counters are replaced by each newer record's;
- tickets are merged by ``ticket.ticket_id`` (a DELTA replaces the tickets it carries; SUMMARY and
  FULL replace them all);
- lifecycle rows are appended by ``seq``: rows 1..``event_count`` make the whole log; a gap means
  a change was missed (``missing_events``); FULL replaces the rows.

Decoded records in, plain dicts out (as `wire.serde` gives them): no Kafka, no domain types.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Record = dict[str, Any]

_HEADER_SKIP = frozenset({"tickets", "events"})


@dataclass
class ExecutionView:
    execution_id: str
    header: Record = field(default_factory=dict)  # every snapshot field but tickets and events
    tickets: dict[str, Record] = field(default_factory=dict)  # ticket_id -> ExecutionTicket, in ticket order
    events: dict[int, Record] = field(default_factory=dict)  # seq -> LifecycleEvent
    sequence: int = 0  # the last state change applied (0: none)

    @property
    def status(self) -> str | None:
        return self.header.get("status")

    @property
    def event_count(self) -> int:
        """Rows of the whole log as the latest record counts them (or as held, for FULL records)."""
        count = self.header.get("event_count")
        return len(self.events) if count is None else int(count)

    @property
    def missing_events(self) -> list[int]:
        """Row numbers of the log not seen (a change was missed, or only the table was read)."""
        return [seq for seq in range(1, self.event_count + 1) if seq not in self.events]

    @property
    def open_ticket_count(self) -> int:
        count = self.header.get("open_ticket_count")
        if count is not None:
            return int(count)
        terminal = {"FILLED", "CANCELLED", "REJECTED"}
        return sum(1 for ticket in self.tickets.values() if ticket["status"] not in terminal)

    @property
    def is_complete(self) -> bool:
        complete = self.header.get("is_complete")
        return self.open_ticket_count == 0 if complete is None else bool(complete)

    def snapshot(self) -> Record:
        """A FULL-shaped snapshot of everything held (tickets in ticket order, rows by seq)."""
        return {**self.header, "tickets": list(self.tickets.values()),
                "events": [self.events[seq] for seq in sorted(self.events)]}

    def apply_change(self, change: Mapping[str, Any]) -> bool:
        """Fold one ExecutionStateChange; False if it is a duplicate (sequence already applied)."""
        if change["execution_id"] != self.execution_id:
            raise ValueError(f"change of {change['execution_id']} applied to the view of {self.execution_id}")
        if change["sequence"] <= self.sequence:
            return False
        self.sequence = change["sequence"]
        self._apply_snapshot(change["execution"])
        return True

    def apply_snapshot(self, snapshot: Mapping[str, Any]) -> bool:
        """Fold a table row or a command result's snapshot (SUMMARY); False if it is older than held."""
        last = snapshot.get("last_sequence")
        if last is not None and last < self.sequence:
            return False
        if last is not None:
            self.sequence = last
        self._apply_snapshot(snapshot)
        return True

    def _apply_snapshot(self, snapshot: Mapping[str, Any]) -> None:
        content = snapshot.get("content") or "FULL"
        self.header = {key: value for key, value in snapshot.items() if key not in _HEADER_SKIP}
        tickets = {ticket["ticket"]["ticket_id"]: ticket for ticket in snapshot["tickets"]}
        if content == "DELTA":
            self.tickets.update(tickets)
        else:
            self.tickets = tickets
        rows = {row["seq"]: row for row in snapshot["events"]}
        if content == "FULL":
            self.events = rows
        else:
            self.events.update(rows)


def fold_changes(changes: Iterable[Mapping[str, Any]]) -> dict[str, ExecutionView]:
    """Views of every execution in `changes` (in the order read; duplicates dropped)."""
    views: dict[str, ExecutionView] = {}
    for change in sorted(changes, key=lambda c: (c["execution_id"], c["sequence"])):
        execution_id = change["execution_id"]
        view = views.get(execution_id)
        if view is None:
            view = views[execution_id] = ExecutionView(execution_id)
        view.apply_change(change)
    return views
