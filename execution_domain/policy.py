"""ExecutionPolicy: the per-request knobs that shape tickets and how an execution reacts to failure."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool

from execution_domain.canonical import decimal_from_str, to_primitive

__all__ = [
    "CriticalSells",
    "OnCriticalRejection",
    "ExecutionPolicy",
    "OrderType",
    "PartialFunding",
    "TimeInForce",
]


class TimeInForce(StrEnum):
    DAY = "DAY"
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"


class CriticalSells(StrEnum):
    """Which rejected SELLs reject the whole execution (RFC 7.3 "critical SELL")."""

    ALL = "ALL"
    FUNDING = "FUNDING"  # SELLs that another ticket depends on
    NONE = "NONE"


class PartialFunding(StrEnum):
    """What happens to dependants of a ticket that ended partially filled."""

    SCALE_DOWN = "SCALE_DOWN"  # release them scaled to the funded fraction (rounded down)
    CANCEL = "CANCEL"  # cancel them without release


class OnCriticalRejection(StrEnum):
    """What happens to the tickets still open when a critical rejection makes the execution REJECTED."""

    CANCEL_REMAINING = "CANCEL_REMAINING"  # cancel every live order at the OMS, release nothing more
    LET_RUN = "LET_RUN"  # leave live orders working; their fills are still folded and shown


DEFAULT_ON_CRITICAL_REJECTION = OnCriticalRejection.CANCEL_REMAINING


def _bps_input(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError("expected a decimal string such as '25'")
    return Decimal(value) if isinstance(value, int) else decimal_from_str(value)


class ExecutionPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    time_in_force: TimeInForce = TimeInForce.DAY
    order_type: OrderType = OrderType.MARKET
    allow_partial_fills: StrictBool = True
    # Required: a slippage bound is a risk parameter, never silently defaulted.
    max_slippage_bps: Annotated[Decimal, BeforeValidator(_bps_input), Field(ge=0)]
    dry_run: StrictBool = False
    critical_sells: CriticalSells = CriticalSells.FUNDING
    partial_funding: PartialFunding = PartialFunding.SCALE_DOWN
    # A rejected rebalance should not keep changing the portfolio: see docs/domain.md.
    on_critical_rejection: OnCriticalRejection = DEFAULT_ON_CRITICAL_REJECTION

    def to_primitive(self) -> dict[str, Any]:
        primitive = to_primitive(self.model_dump(mode="python"))
        assert isinstance(primitive, dict)
        return primitive

    @classmethod
    def from_primitive(cls, data: Any) -> ExecutionPolicy:
        return cls.model_validate(data)
