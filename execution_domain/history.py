"""What the fold looks up about an execution's past, by id, and what each input adds to it.

An execution's state is its head (each ticket's current state and a few counters,
`execution.Execution`); its past (every log entry, every fill applied, every report processed)
is not carried along. The fold needs only a few facts from that past, each looked up by id:

- the fill already applied under a fill id (per-fill reports are deduplicated by fill id for the
  order's life; an id reused with other content is a conflict);
- the reports already processed under an event id (a redelivered report is a duplicate, the
  same id with other content is an anomaly);
- the same for reports that reached no ticket of the execution;
- whether a cancel command id was already handled.

`ExecutionHistory` is that port; every operation returns, in `Outcome.remembered`, what it adds,
for the adapter to store under those ids. So a fold reads and writes what the input touches,
never the history: its cost does not grow with an execution's age. `InMemoryHistory` is the
plain implementation (tests, replay, reference folds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from execution_domain.events import ReportKey
from execution_domain.fills import Fill

__all__ = ["ExecutionHistory", "InMemoryHistory", "NOTHING_REMEMBERED", "NO_HISTORY", "Remembered", "UnroutedKey"]

# (execution_id named by the event, ticket_id, event_id) of events that reached no ticket of this execution.
UnroutedKey = tuple[str, str, str]


class ExecutionHistory(Protocol):
    """Lookups into one execution's past."""

    def fill(self, ticket_id: str, fill_id: str) -> Fill | None:
        """The fill applied to the ticket under `fill_id`, or None."""
        ...

    def reports(self, ticket_id: str, event_id: str) -> tuple[ReportKey, ...]:
        """The reports processed for the ticket under `event_id`, oldest first; () if none."""
        ...

    def unrouted(self, key: UnroutedKey) -> tuple[ReportKey, ...]:
        """The reports processed under an event that reached no ticket; () if none."""
        ...

    def command_handled(self, command_id: str) -> bool:
        """Whether a cancel command with this id was already handled."""
        ...


@dataclass(frozen=True, slots=True)
class Remembered:
    """What one input adds to the history; the adapter stores each under its id."""

    fills: tuple[tuple[str, Fill], ...] = ()  # (ticket_id, fill applied)
    reports: tuple[tuple[str, str, tuple[ReportKey, ...]], ...] = ()  # (ticket_id, event_id, every report under it)
    unrouted: tuple[tuple[UnroutedKey, tuple[ReportKey, ...]], ...] = ()
    commands: tuple[str, ...] = ()  # cancel command ids handled

    def __bool__(self) -> bool:
        return bool(self.fills or self.reports or self.unrouted or self.commands)


NOTHING_REMEMBERED = Remembered()


@dataclass
class InMemoryHistory:
    """An execution's history in dicts. Mutable by design: it is the store of a test or a replay."""

    fills: dict[tuple[str, str], Fill] = field(default_factory=dict)
    seen: dict[tuple[str, str], tuple[ReportKey, ...]] = field(default_factory=dict)
    unrouted_reports: dict[UnroutedKey, tuple[ReportKey, ...]] = field(default_factory=dict)
    commands: set[str] = field(default_factory=set)

    def fill(self, ticket_id: str, fill_id: str) -> Fill | None:
        return self.fills.get((ticket_id, fill_id))

    def reports(self, ticket_id: str, event_id: str) -> tuple[ReportKey, ...]:
        return self.seen.get((ticket_id, event_id), ())

    def unrouted(self, key: UnroutedKey) -> tuple[ReportKey, ...]:
        return self.unrouted_reports.get(key, ())

    def command_handled(self, command_id: str) -> bool:
        return command_id in self.commands

    def remember(self, remembered: Remembered) -> None:
        for ticket_id, fill in remembered.fills:
            self.fills[(ticket_id, fill.fill_id)] = fill
        for ticket_id, event_id, reports in remembered.reports:
            self.seen[(ticket_id, event_id)] = reports
        for key, reports in remembered.unrouted:
            self.unrouted_reports[key] = reports
        self.commands.update(remembered.commands)


class _NoHistory:
    """An execution with no past (just created, or a fold that needs no lookups)."""

    def fill(self, ticket_id: str, fill_id: str) -> Fill | None:
        return None

    def reports(self, ticket_id: str, event_id: str) -> tuple[ReportKey, ...]:
        return ()

    def unrouted(self, key: UnroutedKey) -> tuple[ReportKey, ...]:
        return ()

    def command_handled(self, command_id: str) -> bool:
        return False


NO_HISTORY: ExecutionHistory = _NoHistory()
