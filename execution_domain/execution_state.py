"""Execution (aggregate) state, RFC 7.1: a pure function of the tickets' states and the policy.

``PRECEDENCE`` is read top to bottom; the first row whose condition holds is the state.
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
