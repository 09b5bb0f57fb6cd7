"""Execution (aggregate) state, RFC 7.1: a pure function of the tickets' states and the policy.

``PRECEDENCE`` is read top to bottom; the first row whose condition holds is the state. The
facts it reads are counts over the tickets (`TicketTally`), kept up to date ticket by ticket as
tickets change, so deriving the state costs the same for 3 tickets as for 1,000.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from execution_domain.policy import CriticalSells, ExecutionPolicy
from execution_domain.proposal import Side
from execution_domain.ticket_state import TicketRecord, TicketState
from execution_domain.tickets import SecurityOrderTicket, Ticket

__all__ = [
    "TicketTally",
    "ExecutionFacts",
    "ExecutionState",
    "PRECEDENCE",
    "PrecedenceRow",
    "derive_execution_state",
    "execution_facts",
    "is_critical_rejection",
    "state_from_facts",
]


class ExecutionState(StrEnum):
    CREATED = "CREATED"
    SUBMITTED = "SUBMITTED"
    ACCEPTED = "ACCEPTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"


@dataclass(frozen=True, slots=True)
class ExecutionFacts:
    critical_rejection: bool  # RFC 7.3: an FX (or cash) ticket with dependants, or a critical SELL, was rejected
    cancel_requested: bool
    all_terminal: bool
    all_permitted: bool  # every ticket terminal in a state the policy accepts as done
    any_cancelled: bool
    any_rejected: bool
    any_filled: bool
    all_accepted: bool
    any_released: bool


def is_critical_rejection(ticket: Ticket, has_dependants: bool, policy: ExecutionPolicy) -> bool:
    """Whether rejecting ``ticket`` rejects the execution (RFC 7.3)."""
    if isinstance(ticket, SecurityOrderTicket):
        if ticket.side is Side.BUY:
            return False
        return policy.critical_sells is CriticalSells.ALL or (
            policy.critical_sells is CriticalSells.FUNDING and has_dependants
        )
    # FX and cash transfers exist to fund other tickets: rejected with dependants, those cannot proceed.
    return has_dependants


def _permitted_terminal(record: TicketRecord, policy: ExecutionPolicy) -> bool:
    if record.state is TicketState.FILLED:
        return True
    return record.state is TicketState.CANCELLED and record.filled_qty > 0 and policy.allow_partial_fills


def execution_facts(
    tickets: Sequence[Ticket],
    records: Mapping[str, TicketRecord],
    dependants: Mapping[str, tuple[str, ...]],
    policy: ExecutionPolicy,
    cancel_requested: bool,
) -> ExecutionFacts:
    all_terminal = all_permitted = all_accepted = True
    critical = False
    any_cancelled = any_rejected = any_filled = any_released = False
    for ticket in tickets:
        record = records[ticket.ticket_id]
        state = record.state
        if state is TicketState.REJECTED:
            any_rejected = True
            if not critical and is_critical_rejection(ticket, bool(dependants.get(ticket.ticket_id)), policy):
                critical = True
        elif state is TicketState.CANCELLED:
            any_cancelled = True
        if not record.is_terminal:
            all_terminal = False
        if not _permitted_terminal(record, policy):
            all_permitted = False
        if record.filled_qty > 0:
            any_filled = True
        if state is not TicketState.ACCEPTED:
            all_accepted = False
        if record.is_submitted:
            any_released = True
    return ExecutionFacts(
        critical_rejection=critical,
        cancel_requested=cancel_requested,
        all_terminal=all_terminal,
        all_permitted=all_permitted,
        any_cancelled=any_cancelled,
        any_rejected=any_rejected,
        any_filled=any_filled,
        all_accepted=all_accepted and bool(tickets),
        any_released=any_released,
    )


@dataclass(frozen=True, slots=True)
class PrecedenceRow:
    state: ExecutionState
    condition: Callable[[ExecutionFacts], bool]
    meaning: str


# fmt: off
PRECEDENCE: tuple[PrecedenceRow, ...] = (
    PrecedenceRow(ExecutionState.REJECTED,         lambda f: f.critical_rejection,
                  "a critical ticket was rejected: an FX/cash ticket others depend on, or a SELL critical by policy"),
    PrecedenceRow(ExecutionState.CANCELLED,        lambda f: f.cancel_requested and f.all_terminal and f.any_cancelled,
                  "cancel requested and every ticket terminal, at least one cancelled"),
    PrecedenceRow(ExecutionState.FILLED,           lambda f: f.all_terminal and f.all_permitted,
                  "every ticket FILLED, or CANCELLED after a partial fill when allow_partial_fills"),
    PrecedenceRow(ExecutionState.PARTIALLY_FILLED, lambda f: f.any_filled,
                  "some quantity filled (final once every ticket is terminal)"),
    PrecedenceRow(ExecutionState.REJECTED,         lambda f: f.all_terminal and f.any_rejected,
                  "every ticket terminal, nothing filled, some ticket rejected"),
    PrecedenceRow(ExecutionState.CANCELLED,        lambda f: f.all_terminal,
                  "every ticket terminal, nothing filled, none rejected"),
    PrecedenceRow(ExecutionState.ACCEPTED,         lambda f: f.all_accepted,
                  "every ticket ACCEPTED, nothing filled"),
    PrecedenceRow(ExecutionState.SUBMITTED,        lambda f: f.any_released,
                  "some ticket handed to the OMS"),
    PrecedenceRow(ExecutionState.CREATED,          lambda f: True,
                  "nothing handed to the OMS yet (always the case for a dry run)"),
)
# fmt: on


@dataclass(frozen=True, slots=True)
class TicketTally:
    """How many tickets are in each condition `ExecutionFacts` asks about.

    Equal to counting over every ticket (`execution_facts`; a property test pins that), but updated
    in O(1) per changed ticket with `moved`.
    """

    tickets: int = 0
    critical_rejected: int = 0
    rejected: int = 0
    cancelled: int = 0
    terminal: int = 0
    permitted: int = 0
    filled: int = 0  # tickets with some quantity filled
    accepted: int = 0
    submitted: int = 0

    @classmethod
    def of(
        cls,
        tickets: Sequence[Ticket],
        records: Mapping[str, TicketRecord],
        dependants: Mapping[str, tuple[str, ...]],
        policy: ExecutionPolicy,
    ) -> TicketTally:
        counts = [0] * 9
        for ticket in tickets:
            for index, value in enumerate(_contribution(ticket, records[ticket.ticket_id], dependants, policy)):
                counts[index] += value
        return cls(*counts)

    def moved(
        self,
        ticket: Ticket,
        before: TicketRecord,
        after: TicketRecord,
        dependants: Mapping[str, tuple[str, ...]],
        policy: ExecutionPolicy,
    ) -> TicketTally:
        """The tally once `ticket` went from `before` to `after`."""
        old = _contribution(ticket, before, dependants, policy)
        new = _contribution(ticket, after, dependants, policy)
        if old == new:
            return self
        return TicketTally(*(have - was + now for have, was, now in zip(_fields(self), old, new, strict=True)))

    def facts(self, cancel_requested: bool) -> ExecutionFacts:
        n = self.tickets
        return ExecutionFacts(
            critical_rejection=self.critical_rejected > 0,
            cancel_requested=cancel_requested,
            all_terminal=self.terminal == n,
            all_permitted=self.permitted == n,
            any_cancelled=self.cancelled > 0,
            any_rejected=self.rejected > 0,
            any_filled=self.filled > 0,
            all_accepted=self.accepted == n and n > 0,
            any_released=self.submitted > 0,
        )

    @property
    def open(self) -> int:
        """Tickets not yet in a terminal state (working at the OMS, or not yet released)."""
        return self.tickets - self.terminal


def _fields(tally: TicketTally) -> tuple[int, ...]:
    return (tally.tickets, tally.critical_rejected, tally.rejected, tally.cancelled, tally.terminal,
            tally.permitted, tally.filled, tally.accepted, tally.submitted)


def _contribution(
    ticket: Ticket, record: TicketRecord, dependants: Mapping[str, tuple[str, ...]], policy: ExecutionPolicy
) -> tuple[int, ...]:
    """One ticket's share of each count of `TicketTally`, in field order."""
    state = record.state
    rejected = state is TicketState.REJECTED
    critical = rejected and is_critical_rejection(ticket, bool(dependants.get(ticket.ticket_id)), policy)
    return (
        1,
        int(critical),
        int(rejected),
        int(state is TicketState.CANCELLED),
        int(record.is_terminal),
        int(_permitted_terminal(record, policy)),
        int(record.filled_qty > 0),
        int(state is TicketState.ACCEPTED),
        int(record.is_submitted),
    )


def state_from_facts(facts: ExecutionFacts) -> ExecutionState:
    for row in PRECEDENCE:
        if row.condition(facts):
            return row.state
    raise AssertionError("the last precedence row always matches")  # pragma: no cover


def derive_execution_state(
    tickets: Sequence[Ticket],
    records: Mapping[str, TicketRecord],
    dependants: Mapping[str, tuple[str, ...]],
    policy: ExecutionPolicy,
    cancel_requested: bool,
) -> ExecutionState:
    return state_from_facts(execution_facts(tickets, records, dependants, policy, cancel_requested))
