"""What the mock OMS does with each order: scripted per scenario, seeded, deterministic.

A scenario maps a ticket (as a TicketInstruction carries it) to the steps the OMS takes:
accept, reject, fill (all or part, at a price), cancel. Which scenario applies is chosen per
proposal (`--scenario PROPOSAL_ID=NAME`), else the default.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

from mock_oms.provider import MockAccept, MockFill, MockReject, MockStep

Ticket = Mapping[str, Any]
Scenario = Callable[[Ticket, random.Random], list[MockStep]]


def order_quantity(ticket: Ticket) -> Decimal:
    kind = ticket["ticket_type"]
    if kind == "SECURITY_ORDER":
        return Decimal(ticket["quantity"])
    if kind == "FX_SPOT_ORDER":
        return Decimal(ticket["buy_amount"])
    return abs(Decimal(ticket["amount"]))


def market_price(ticket: Ticket, rng: random.Random) -> Decimal:
    """A plausible execution price: FX at the implied rate, securities around 100."""
    if ticket["ticket_type"] == "FX_SPOT_ORDER":
        rate = Decimal(ticket["sell_amount_estimated"]) / Decimal(ticket["buy_amount"])
        return (rate * Decimal(1 + rng.uniform(-0.001, 0.001))).quantize(Decimal("0.000001"))
    if ticket["ticket_type"] == "CASH_TRANSFER":
        return Decimal(1)
    return Decimal(str(round(rng.uniform(20, 180), 2)))


def accept_and_fill(ticket: Ticket, rng: random.Random) -> list[MockStep]:
    return [MockAccept(), MockFill(None, market_price(ticket, rng))]


def partial_then_fill(ticket: Ticket, rng: random.Random) -> list[MockStep]:
    whole = order_quantity(ticket)
    part = (whole / 2).quantize(Decimal(1), rounding=ROUND_DOWN) or whole
    price = market_price(ticket, rng)
    return [MockAccept(), MockFill(part, price), MockFill(None, price + Decimal("0.05"))]


def reject_fx(ticket: Ticket, rng: random.Random) -> list[MockStep]:
    if ticket["ticket_type"] == "FX_SPOT_ORDER":
        return [MockReject("FX desk: no liquidity for the pair")]
    return accept_and_fill(ticket, rng)


def reject_sell(ticket: Ticket, rng: random.Random) -> list[MockStep]:
    if ticket.get("side") == "SELL":
        return [MockReject("instrument halted")]
    return accept_and_fill(ticket, rng)


def seeded_mix(ticket: Ticket, rng: random.Random) -> list[MockStep]:
    """Random but reproducible: one to three fills at drifting prices."""
    whole = order_quantity(ticket)
    price = market_price(ticket, rng)
    steps: list[MockStep] = [MockAccept()]
    for _ in range(rng.randint(0, 2)):
        part = (whole * Decimal(str(round(rng.uniform(0.1, 0.4), 2)))).quantize(Decimal(1), rounding=ROUND_DOWN)
        if part > 0:
            steps.append(MockFill(part, price))
            price += Decimal("0.01")
    steps.append(MockFill(None, price))
    return steps


SCENARIOS: Mapping[str, Scenario] = {
    "accept_and_fill": accept_and_fill,
    "partial_then_fill": partial_then_fill,
    "reject_fx": reject_fx,
    "reject_sell": reject_sell,
    "seeded_mix": seeded_mix,
}


@dataclass(frozen=True)
class ScenarioBook:
    """Which scenario each proposal gets."""

    default: str = "accept_and_fill"
    by_proposal: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        for name in [self.default, *(self.by_proposal or {}).values()]:
            if name not in SCENARIOS:
                raise ValueError(f"unknown scenario {name!r}; known: {', '.join(sorted(SCENARIOS))}")

    def steps_for(self, proposal_id: str, ticket: Ticket, rng: random.Random) -> list[MockStep]:
        name = (self.by_proposal or {}).get(proposal_id, self.default)
        return SCENARIOS[name](ticket, rng)

    @classmethod
    def parse(cls, default: str, assignments: list[str]) -> ScenarioBook:
        by_proposal = {}
        for item in assignments:
            proposal_id, separator, name = item.partition("=")
            if not separator:
                raise ValueError(f"--scenario expects PROPOSAL_ID=NAME, got {item!r}")
            by_proposal[proposal_id] = name
        return cls(default, by_proposal)
