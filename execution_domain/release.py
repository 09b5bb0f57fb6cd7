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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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

__all__ = ["DependencyStatus", "DependencyVerdict", "ReleaseResolution", "dependency_verdict", "resolve_releases"]

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
class ReleaseResolution:
    records: Mapping[str, TicketRecord]
    steps: tuple[TicketStep, ...]  # DEPENDENCY_FAILED / DEPENDENCY_SCALED steps applied
    released: tuple[str, ...]  # ticket ids newly released for submission, in ticket order


def resolve_releases(
    tickets: Sequence[Ticket],
    records: Mapping[str, TicketRecord],
    policy: ExecutionPolicy,
    *,
    at: datetime,
    halted: bool,
) -> ReleaseResolution:
    """Release, scale or cancel every PENDING_SUBMIT ticket whose dependencies have settled.

    ``halted`` (dry run, or the execution is being cancelled) releases nothing.
    """
    if halted:
        return ReleaseResolution(records, (), ())
    by_id = {ticket.ticket_id: ticket for ticket in tickets}
    working: dict[str, TicketRecord] | None = None  # copied on first write
    steps: list[TicketStep] = []
    released: list[str] = []

    def current(ticket_id: str) -> TicketRecord:
        return (working or records)[ticket_id]

    for ticket in tickets:
        record = current(ticket.ticket_id)
        if record.state is not TicketState.PENDING_SUBMIT or record.released_for_submission:
            continue
        verdicts = [dependency_verdict(by_id[d], current(d), policy) for d in ticket.dependencies]
        failure = next((v for v in verdicts if v.status is DependencyStatus.FAILED), None)
        if failure is None and any(v.status is DependencyStatus.WAITING for v in verdicts):
            continue
        if working is None:
            working = dict(records)
        if failure is not None:
            step = apply_ticket_input(record, TicketInput(TicketEventKind.DEPENDENCY_FAILED, at, reason=failure.reason))
            steps.append(step)
            working[ticket.ticket_id] = step.record
            continue
        fraction = min((v.fraction for v in verdicts), default=_WHOLE)
        if fraction < 1:
            quantity = ticket.scaled_quantity(fraction)
            if quantity <= 0:
                reason = f"funded fraction {fraction} rounds {ticket.ticket_id} down to nothing"
                step = apply_ticket_input(record, TicketInput(TicketEventKind.DEPENDENCY_FAILED, at, reason=reason))
                steps.append(step)
                working[ticket.ticket_id] = step.record
                continue
            step = apply_ticket_input(record, TicketInput(TicketEventKind.DEPENDENCY_SCALED, at, order_qty=quantity))
            steps.append(step)
            record = step.record
        working[ticket.ticket_id] = replace(record, released_for_submission=True)
        released.append(ticket.ticket_id)
    return ReleaseResolution(working or records, tuple(steps), tuple(released))
