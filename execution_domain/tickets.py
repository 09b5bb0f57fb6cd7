"""Deterministic ticket generation (RFC 6): order, identity, dependencies and the 6.3 schemas.

The same artifact and policy always give byte-identical tickets: ids are content hashes,
the order is (group, artifact position), and the primitive form is canonical.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Any, ClassVar, TypeAlias

from execution_domain.canonical import canonical_json, decimal_from_str, decimal_to_str
from execution_domain.policy import ExecutionPolicy, OrderType, TimeInForce
from execution_domain.proposal import (
    CashFlowIntent,
    FxSpotIntent,
    ProposalArtifact,
    SecurityTradeIntent,
    Side,
    ticket_group,
)

__all__ = [
    "CashTransferTicket",
    "FxSpotOrderTicket",
    "SecurityOrderTicket",
    "Ticket",
    "TicketType",
    "currency_minor_units",
    "generate_tickets",
    "ticket_from_primitive",
    "ticket_id_for",
    "tickets_canonical_json",
    "tickets_to_primitive",
]


class TicketType(StrEnum):
    SECURITY_ORDER = "SECURITY_ORDER"
    FX_SPOT_ORDER = "FX_SPOT_ORDER"
    CASH_TRANSFER = "CASH_TRANSFER"


# ISO 4217 currencies whose minor unit is not 2 decimals; used only when scaling amounts down.
_MINOR_UNIT_EXCEPTIONS: Mapping[str, int] = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF"), 0),
    **dict.fromkeys(("UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}


def currency_minor_units(currency: str) -> int:
    return _MINOR_UNIT_EXCEPTIONS.get(currency, 2)


def ticket_id_for(proposal_version_hash: str, intent_id: str, attempt: int = 1) -> str:
    """RFC 6.2: ``"tkt_" + sha1(proposal_version_hash + intent_id)[:12]`` (hash string as carried) for
    the first execution of a proposal version; ``sha1(proposal_version_hash + intent_id + "#" + attempt)``
    for a later one (a re-execution after the first ended REJECTED or CANCELLED).

    The refinement of RFC 6.2 (docs/domain.md, "Ticket identity"): the id is what the OMS
    deduplicates orders by, so two executions of one version must never share one, while every
    replay of one execution must give the same ids. The attempt number is fixed when the execution
    is admitted, so it is as deterministic as the rest; the first execution's ids are the RFC's.
    """
    seed = proposal_version_hash + intent_id if attempt == 1 else f"{proposal_version_hash}{intent_id}#{attempt}"
    return "tkt_" + hashlib.sha1(seed.encode("utf-8")).hexdigest()[:12]


def _floor_to_units(value: Fraction, decimals: int) -> Decimal:
    # Exact rational arithmetic: no rounding happens before the single floor.
    scaled = math.floor(value * 10**decimals)
    return Decimal(scaled).scaleb(-decimals)


@dataclass(frozen=True, slots=True)
class SecurityOrderTicket:
    ticket_type: ClassVar[TicketType] = TicketType.SECURITY_ORDER

    ticket_id: str
    intent_id: str
    instrument_id: str
    side: Side
    quantity: Decimal
    currency: str
    order_type: OrderType
    time_in_force: TimeInForce
    dependencies: tuple[str, ...]
    max_slippage_bps: Decimal

    @property
    def order_quantity(self) -> Decimal:
        return self.quantity

    def scaled_quantity(self, fraction: Fraction) -> Decimal:
        """Order quantity scaled to ``fraction``, whole units, rounded down."""
        return _floor_to_units(Fraction(self.quantity) * fraction, 0)

    def with_order_quantity(self, quantity: Decimal) -> SecurityOrderTicket:
        return self if quantity == self.quantity else replace(self, quantity=quantity)

    def to_primitive(self) -> dict[str, Any]:
        return {
            "ticket_id": self.ticket_id,
            "ticket_type": self.ticket_type.value,
            "intent_id": self.intent_id,
            "instrument_id": self.instrument_id,
            "side": self.side.value,
            "quantity": decimal_to_str(self.quantity),
            "currency": self.currency,
            "order_type": self.order_type.value,
            "time_in_force": self.time_in_force.value,
            "dependencies": list(self.dependencies),
            "constraints": {"max_slippage_bps": decimal_to_str(self.max_slippage_bps)},
        }

    @classmethod
    def from_primitive(cls, data: Mapping[str, Any]) -> SecurityOrderTicket:
        return cls(
            ticket_id=data["ticket_id"],
            intent_id=data["intent_id"],
            instrument_id=data["instrument_id"],
            side=Side(data["side"]),
            quantity=decimal_from_str(data["quantity"]),
            currency=data["currency"],
            order_type=OrderType(data["order_type"]),
            time_in_force=TimeInForce(data["time_in_force"]),
            dependencies=tuple(data["dependencies"]),
            max_slippage_bps=decimal_from_str(data["constraints"]["max_slippage_bps"]),
        )


@dataclass(frozen=True, slots=True)
class FxSpotOrderTicket:
    ticket_type: ClassVar[TicketType] = TicketType.FX_SPOT_ORDER

    ticket_id: str
    intent_id: str
    pair: str
    buy_currency: str
    buy_amount: Decimal
    sell_currency: str
    sell_amount_estimated: Decimal
    order_type: OrderType
    time_in_force: TimeInForce
    dependencies: tuple[str, ...]

    @property
    def order_quantity(self) -> Decimal:
        """Fills count against the amount bought."""
        return self.buy_amount

    def scaled_quantity(self, fraction: Fraction) -> Decimal:
        return _floor_to_units(Fraction(self.buy_amount) * fraction, currency_minor_units(self.buy_currency))

    def with_order_quantity(self, quantity: Decimal) -> FxSpotOrderTicket:
        if quantity == self.buy_amount:
            return self
        # The sell estimate keeps the indicative rate, rounded down to the sell currency's minor unit.
        ratio = Fraction(quantity) / Fraction(self.buy_amount)
        sell = _floor_to_units(Fraction(self.sell_amount_estimated) * ratio, currency_minor_units(self.sell_currency))
        return replace(self, buy_amount=quantity, sell_amount_estimated=sell)

    def to_primitive(self) -> dict[str, Any]:
        return {
            "ticket_id": self.ticket_id,
            "ticket_type": self.ticket_type.value,
            "intent_id": self.intent_id,
            "pair": self.pair,
            "buy_currency": self.buy_currency,
            "buy_amount": decimal_to_str(self.buy_amount),
            "sell_currency": self.sell_currency,
            "sell_amount_estimated": decimal_to_str(self.sell_amount_estimated),
            "order_type": self.order_type.value,
            "time_in_force": self.time_in_force.value,
            "dependencies": list(self.dependencies),
        }

    @classmethod
    def from_primitive(cls, data: Mapping[str, Any]) -> FxSpotOrderTicket:
        return cls(
            ticket_id=data["ticket_id"],
            intent_id=data["intent_id"],
            pair=data["pair"],
            buy_currency=data["buy_currency"],
            buy_amount=decimal_from_str(data["buy_amount"]),
            sell_currency=data["sell_currency"],
            sell_amount_estimated=decimal_from_str(data["sell_amount_estimated"]),
            order_type=OrderType(data["order_type"]),
            time_in_force=TimeInForce(data["time_in_force"]),
            dependencies=tuple(data["dependencies"]),
        )


@dataclass(frozen=True, slots=True)
class CashTransferTicket:
    ticket_type: ClassVar[TicketType] = TicketType.CASH_TRANSFER

    ticket_id: str
    intent_id: str
    currency: str
    amount: Decimal  # signed: + into the portfolio, - out of it
    order_type: OrderType
    time_in_force: TimeInForce
    dependencies: tuple[str, ...]

    @property
    def order_quantity(self) -> Decimal:
        return abs(self.amount)

    def scaled_quantity(self, fraction: Fraction) -> Decimal:
        return _floor_to_units(Fraction(abs(self.amount)) * fraction, currency_minor_units(self.currency))

    def with_order_quantity(self, quantity: Decimal) -> CashTransferTicket:
        amount = quantity if self.amount > 0 else -quantity
        return self if amount == self.amount else replace(self, amount=amount)

    def to_primitive(self) -> dict[str, Any]:
        return {
            "ticket_id": self.ticket_id,
            "ticket_type": self.ticket_type.value,
            "intent_id": self.intent_id,
            "currency": self.currency,
            "amount": decimal_to_str(self.amount),
            "order_type": self.order_type.value,
            "time_in_force": self.time_in_force.value,
            "dependencies": list(self.dependencies),
        }

    @classmethod
    def from_primitive(cls, data: Mapping[str, Any]) -> CashTransferTicket:
        return cls(
            ticket_id=data["ticket_id"],
            intent_id=data["intent_id"],
            currency=data["currency"],
            amount=decimal_from_str(data["amount"]),
            order_type=OrderType(data["order_type"]),
            time_in_force=TimeInForce(data["time_in_force"]),
            dependencies=tuple(data["dependencies"]),
        )


Ticket: TypeAlias = SecurityOrderTicket | FxSpotOrderTicket | CashTransferTicket

_TICKET_CLASSES: Mapping[str, type[SecurityOrderTicket] | type[FxSpotOrderTicket] | type[CashTransferTicket]] = {
    TicketType.SECURITY_ORDER.value: SecurityOrderTicket,
    TicketType.FX_SPOT_ORDER.value: FxSpotOrderTicket,
    TicketType.CASH_TRANSFER.value: CashTransferTicket,
}


def ticket_from_primitive(data: Mapping[str, Any]) -> Ticket:
    return _TICKET_CLASSES[data["ticket_type"]].from_primitive(data)


def generate_tickets(artifact: ProposalArtifact, policy: ExecutionPolicy, attempt: int = 1) -> tuple[Ticket, ...]:
    """RFC 6: one ticket per intent, ordered CASH_FLOW, SELL, FX, BUY (artifact order within a group).

    ``artifact`` must be valid (see ``parse_artifact``/``check_artifact``). ``attempt``: which
    execution of the version these tickets are for (see ``ticket_id_for``).
    """
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {attempt}")
    version_hash = artifact.proposal_version_hash
    intents = artifact.trades_and_funding.intents
    ticket_ids = {intent.intent_id: ticket_id_for(version_hash, intent.intent_id, attempt) for intent in intents}
    ordered = sorted(range(len(intents)), key=lambda index: (ticket_group(intents[index]), index))
    return tuple(_ticket_for(intents[index], ticket_ids, policy) for index in ordered)


def _ticket_for(
    intent: SecurityTradeIntent | FxSpotIntent | CashFlowIntent,
    ticket_ids: Mapping[str, str],
    policy: ExecutionPolicy,
) -> Ticket:
    ticket_id = ticket_ids[intent.intent_id]
    dependencies = tuple(ticket_ids[dependency] for dependency in intent.dependencies)
    if isinstance(intent, SecurityTradeIntent):
        return SecurityOrderTicket(
            ticket_id=ticket_id,
            intent_id=intent.intent_id,
            instrument_id=intent.instrument_id,
            side=intent.side,
            quantity=intent.quantity,
            currency=intent.currency,
            order_type=policy.order_type,
            time_in_force=policy.time_in_force,
            dependencies=dependencies,
            max_slippage_bps=policy.max_slippage_bps,
        )
    if isinstance(intent, FxSpotIntent):
        return FxSpotOrderTicket(
            ticket_id=ticket_id,
            intent_id=intent.intent_id,
            pair=intent.pair,
            buy_currency=intent.buy_currency,
            buy_amount=intent.buy_amount,
            sell_currency=intent.sell_currency,
            sell_amount_estimated=intent.sell_amount_estimated,
            order_type=policy.order_type,
            time_in_force=policy.time_in_force,
            dependencies=dependencies,
        )
    return CashTransferTicket(
        ticket_id=ticket_id,
        intent_id=intent.intent_id,
        currency=intent.currency,
        amount=intent.amount,
        order_type=policy.order_type,
        time_in_force=policy.time_in_force,
        dependencies=dependencies,
    )


def tickets_to_primitive(tickets: Sequence[Ticket]) -> list[dict[str, Any]]:
    return [ticket.to_primitive() for ticket in tickets]


def tickets_canonical_json(tickets: Sequence[Ticket]) -> str:
    return canonical_json(tickets_to_primitive(tickets))
