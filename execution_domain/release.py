"""Dependency-aware release (RFC 6.1, FIX OTO-style contingencies).

A PENDING_SUBMIT ticket is released for submission once every dependency has settled in a
way that funds it:

* FILLED funds it (fraction = filled / original quantity, at most 1);
* CANCELLED with something filled funds it partially under ``partial_funding=SCALE_DOWN``
  (the ticket is scaled to the smallest funded fraction, rounded down to whole units or the
  currency's minor unit) and fails it under ``partial_funding=CANCEL``;
* REJECTED, or CANCELLED with nothing filled, fails it: the ticket is CANCELLED without
  ever being released, and so, in turn, are its own dependants.

Tickets are visited in ticket order, which respects dependencies, so cascades resolve in one
pass. A decision is final: a late fill on a dependency does not re-scale or revive a ticket.

A ticket's release depends only on its dependencies, so after some tickets settle only their
dependants need a look (``candidates``), and those of any ticket the look cancels: the cost of a
resolution is the number of tickets it may decide, not the size of the execution.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction

from execution_domain.canonical import decimal_to_str
from execution_domain.policy import ExecutionPolicy, PartialFunding
from execution_domain.ticket_state import (
    TicketEventKind,
    TicketInput,
    TicketRecord,
    TicketState,
    TicketStep,
    apply_ticket_input,
)
from execution_domain.tickets import Ticket

__all__ = [
    "DependencyStatus",
    "DependencyVerdict",
    "ReleaseResolution",
    "TicketGraph",
    "dependency_verdict",
    "resolve_releases",
]

_WHOLE = Fraction(1)
_SETTLED = frozenset({TicketState.FILLED, TicketState.CANCELLED, TicketState.REJECTED})


class DependencyStatus(StrEnum):
    WAITING = "WAITING"
    FUNDED = "FUNDED"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class DependencyVerdict:
    status: DependencyStatus
    fraction: Fraction = _WHOLE  # funded share of the dependency's original quantity
    reason: str = ""


_WAITING = DependencyVerdict(DependencyStatus.WAITING)


def dependency_verdict(dependency: Ticket, record: TicketRecord, policy: ExecutionPolicy) -> DependencyVerdict:
    """How far ``dependency`` (in ``record``'s state) funds the tickets that depend on it."""
    state = record.state
    if state not in _SETTLED:
        return _WAITING
    filled = record.filled_qty
    if state is TicketState.FILLED:
        return DependencyVerdict(DependencyStatus.FUNDED, _funded_fraction(filled, dependency))
    if state is TicketState.REJECTED:
        return DependencyVerdict(DependencyStatus.FAILED, reason=f"dependency {dependency.ticket_id} was rejected")
    if state is TicketState.CANCELLED:
        if filled == 0:
            return DependencyVerdict(
                DependencyStatus.FAILED, reason=f"dependency {dependency.ticket_id} ended with nothing filled"
            )
        if policy.partial_funding is PartialFunding.CANCEL:
            return DependencyVerdict(
                DependencyStatus.FAILED,
                reason=(
                    f"dependency {dependency.ticket_id} ended partially filled "
                    f"({decimal_to_str(filled)} of {decimal_to_str(dependency.order_quantity)}) "
                    "and partial_funding is CANCEL"
                ),
            )
        return DependencyVerdict(DependencyStatus.FUNDED, _funded_fraction(filled, dependency))
    raise AssertionError(state)  # pragma: no cover - _SETTLED is exhaustive


def _funded_fraction(filled: Decimal, dependency: Ticket) -> Fraction:
    # Against the generated quantity, so a scaled-down dependency passes its scaling on.
    if filled >= dependency.order_quantity:
        return _WHOLE
    return Fraction(filled) / Fraction(dependency.order_quantity)


@dataclass(frozen=True, slots=True)
class TicketGraph:
    """The tickets of an execution as a dependency graph, indexed once."""

    tickets: tuple[Ticket, ...]  # ticket order: every dependency before its dependants
    by_id: Mapping[str, Ticket]
    position: Mapping[str, int]
    dependants: Mapping[str, tuple[str, ...]]

    @classmethod
    def of(cls, tickets: Sequence[Ticket]) -> TicketGraph:
        dependants: dict[str, list[str]] = {ticket.ticket_id: [] for ticket in tickets}
        for ticket in tickets:
            for dependency in ticket.dependencies:
                dependants[dependency].append(ticket.ticket_id)
        return cls(
            tickets=tuple(tickets),
            by_id={ticket.ticket_id: ticket for ticket in tickets},
            position={ticket.ticket_id: index for index, ticket in enumerate(tickets)},
            dependants={key: tuple(value) for key, value in dependants.items()},
        )


@dataclass(frozen=True, slots=True)
class ReleaseResolution:
    records: Mapping[str, TicketRecord]
    steps: tuple[TicketStep, ...]  # DEPENDENCY_FAILED / DEPENDENCY_SCALED steps applied
    released: tuple[str, ...]  # ticket ids newly released for submission, in ticket order


def resolve_releases(
    tickets: Sequence[Ticket] | TicketGraph,
    records: Mapping[str, TicketRecord],
    policy: ExecutionPolicy,
    *,
    at: datetime,
    halted: bool,
    candidates: Iterable[str] | None = None,
) -> ReleaseResolution:
    """Release, scale or cancel every PENDING_SUBMIT ticket whose dependencies have settled.

    ``halted`` (dry run, or the execution is being cancelled) releases nothing. ``candidates``:
    look only at these tickets (the dependants of tickets that just settled) and at the dependants
    of any ticket the resolution cancels; None looks at every ticket.
    """
    if halted:
        return ReleaseResolution(records, (), ())
    graph = tickets if isinstance(tickets, TicketGraph) else TicketGraph.of(tickets)
    by_id, position = graph.by_id, graph.position
    working: dict[str, TicketRecord] | None = None  # copied on first write
    steps: list[TicketStep] = []
    released: list[str] = []

    def current(ticket_id: str) -> TicketRecord:
        return (working or records)[ticket_id]

    # Ticket order (positions) keeps every dependency before its dependants: cascades resolve in one pass.
    queue = sorted({position[ticket_id] for ticket_id in candidates}) if candidates is not None else list(
        range(len(graph.tickets)))
    queued = set(queue)
    while queue:
        ticket = graph.tickets[heapq.heappop(queue)]
        record = current(ticket.ticket_id)
        if record.state is not TicketState.PENDING_SUBMIT or record.released_for_submission:
            continue
        verdicts = [dependency_verdict(by_id[d], current(d), policy) for d in ticket.dependencies]
        failure = next((v for v in verdicts if v.status is DependencyStatus.FAILED), None)
        if failure is None and any(v.status is DependencyStatus.WAITING for v in verdicts):
            continue
        if working is None:
            working = dict(records)
        reason = failure.reason if failure is not None else ""
        quantity = None
        if failure is None:
            fraction = min((v.fraction for v in verdicts), default=_WHOLE)
            if fraction < 1:
                quantity = ticket.scaled_quantity(fraction)
                if quantity <= 0:
                    reason = f"funded fraction {fraction} rounds {ticket.ticket_id} down to nothing"
        if reason:
            step = apply_ticket_input(record, TicketInput(TicketEventKind.DEPENDENCY_FAILED, at, reason=reason))
            steps.append(step)
            working[ticket.ticket_id] = step.record
            for dependant in graph.dependants[ticket.ticket_id]:  # cancelled: its dependants fail in turn
                if position[dependant] not in queued:
                    queued.add(position[dependant])
                    heapq.heappush(queue, position[dependant])
            continue
        if quantity is not None:
            step = apply_ticket_input(record, TicketInput(TicketEventKind.DEPENDENCY_SCALED, at, order_qty=quantity))
            steps.append(step)
            record = step.record
        working[ticket.ticket_id] = replace(record, released_for_submission=True)
        released.append(ticket.ticket_id)
    return ReleaseResolution(working or records, tuple(steps), tuple(released))
