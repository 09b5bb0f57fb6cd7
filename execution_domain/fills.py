"""Fill accounting for one ticket: per-fill and cumulative reports, dedup, conflicts, average price.

A ticket's fills are reported in one mode, fixed by its first fill report:

* PER_FILL (FIX LastQty/LastPx): each report carries ``fill_id``, ``last_qty``, ``last_price``;
  fills are deduplicated by ``fill_id`` for the ticket's life; the same id with another
  quantity or price is a CONFLICT and is not applied. The ledger holds totals only: the caller
  looks the fill id up in the execution's history (``known``) and remembers each fill applied,
  so recording a fill costs the same at the first fill as at the hundred-thousandth.
* CUMULATIVE (FIX CumQty/AvgPx): each report carries ``filled_qty`` and ``avg_price``. The
  increment over the highest known cumulative quantity becomes a synthetic fill
  ``cum:<filled_qty>``; a report below the known quantity is STALE (out of order) and
  changes nothing; the same quantity with another average price is a CONFLICT.

A report in the other mode is refused (MIXED_MODE): mixing the two double-counts fills.
Quantities and notionals are exact decimals; only the average price is a division.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Context, Decimal
from enum import StrEnum
from typing import Any

from execution_domain.canonical import decimal_from_str, decimal_to_str
from execution_domain.events import EventDetails

__all__ = ["Fill", "FillLedger", "FillReportingMode", "FillResult", "FillVerdict", "average_price"]

# Wide enough that sums and products of realistic quantities and prices are exact.
_EXACT = Context(prec=60)
# The average price is the one division; rounded like Python's default context, but not thread-dependent.
_AVERAGE = Context(prec=28)
_ZERO = Decimal(0)


class FillReportingMode(StrEnum):
    PER_FILL = "PER_FILL"
    CUMULATIVE = "CUMULATIVE"


class FillVerdict(StrEnum):
    APPLIED = "APPLIED"
    DUPLICATE = "DUPLICATE"  # already known: changes nothing
    CONFLICT = "CONFLICT"  # same fill id (or cumulative level) with different quantity or price
    STALE = "STALE"  # cumulative report below the known cumulative quantity
    NO_DETAILS = "NO_DETAILS"  # a fill event without quantity/price
    MALFORMED = "MALFORMED"  # missing or non-positive quantity/price
    MIXED_MODE = "MIXED_MODE"  # per-fill report on a cumulative ticket or the reverse


@dataclass(frozen=True, slots=True)
class Fill:
    fill_id: str
    quantity: Decimal
    price: Decimal

    def to_primitive(self) -> dict[str, Any]:
        return {"fill_id": self.fill_id, "quantity": decimal_to_str(self.quantity), "price": decimal_to_str(self.price)}

    @classmethod
    def from_primitive(cls, data: Mapping[str, Any]) -> Fill:
        return cls(data["fill_id"], decimal_from_str(data["quantity"]), decimal_from_str(data["price"]))


def average_price(quantity: Decimal, notional: Decimal) -> Decimal | None:
    return None if quantity == 0 else _AVERAGE.divide(notional, quantity)


@dataclass(frozen=True, slots=True)
class FillResult:
    verdict: FillVerdict
    ledger: FillLedger  # unchanged unless APPLIED
    fill: Fill | None = None  # the fill applied (APPLIED) or the one already known (DUPLICATE/CONFLICT)
    reason: str = ""


@dataclass(frozen=True, slots=True)
class FillLedger:
    mode: FillReportingMode | None = None
    fill_count: int = 0  # fills applied (per fill, or cumulative increments)
    filled_qty: Decimal = _ZERO
    notional: Decimal = _ZERO  # sum of quantity * price, exact

    @property
    def avg_price(self) -> Decimal | None:
        return average_price(self.filled_qty, self.notional)

    def record(self, details: EventDetails, known: Fill | None = None) -> FillResult:
        """Apply one fill report. ``known``: the fill already applied under ``details.fill_id``, if any
        (per-fill reports; the caller looks it up)."""
        if details.is_per_fill:
            return self._record_per_fill(details, known)
        if details.is_cumulative:
            return self._record_cumulative(details)
        return FillResult(FillVerdict.NO_DETAILS, self, reason="fill event carries no fill quantity or price")

    def _record_per_fill(self, details: EventDetails, known: Fill | None) -> FillResult:
        if self.mode is FillReportingMode.CUMULATIVE:
            return FillResult(FillVerdict.MIXED_MODE, self, reason="per-fill report on a ticket reported cumulatively")
        fill_id, quantity, price = details.fill_id, details.last_qty, details.last_price
        if fill_id is None or quantity is None or price is None:
            reason = "per-fill report needs fill_id, last_qty and last_price"
            return FillResult(FillVerdict.MALFORMED, self, reason=reason)
        if quantity <= 0 or price <= 0:
            reason = f"fill {fill_id}: last_qty and last_price must be > 0"
            return FillResult(FillVerdict.MALFORMED, self, reason=reason)
        if known is not None:
            if known.quantity == quantity and known.price == price:
                return FillResult(FillVerdict.DUPLICATE, self, known, f"fill {fill_id} already applied")
            return FillResult(
                FillVerdict.CONFLICT,
                self,
                known,
                f"fill {fill_id} was {decimal_to_str(known.quantity)} @ {decimal_to_str(known.price)}, "
                f"now reported as {decimal_to_str(quantity)} @ {decimal_to_str(price)}",
            )
        fill = Fill(fill_id, quantity, price)
        ledger = self._with(FillReportingMode.PER_FILL, fill, _EXACT.multiply(quantity, price))
        return FillResult(FillVerdict.APPLIED, ledger, fill)

    def _record_cumulative(self, details: EventDetails) -> FillResult:
        if self.mode is FillReportingMode.PER_FILL:
            return FillResult(FillVerdict.MIXED_MODE, self, reason="cumulative report on a ticket reported per fill")
        cumulative, average = details.filled_qty, details.avg_price
        assert cumulative is not None
        if cumulative < 0 or (average is not None and average <= 0):
            return FillResult(FillVerdict.MALFORMED, self, reason="filled_qty must be >= 0 and avg_price > 0")
        if cumulative < self.filled_qty:
            return FillResult(
                FillVerdict.STALE,
                self,
                reason=f"cumulative {decimal_to_str(cumulative)} is below the known {decimal_to_str(self.filled_qty)}",
            )
        if cumulative == self.filled_qty:
            if cumulative == 0 or average is None or average == self.avg_price:
                return FillResult(FillVerdict.DUPLICATE, self, reason="cumulative quantity already known")
            return FillResult(
                FillVerdict.CONFLICT,
                self,
                reason=(
                    f"cumulative {decimal_to_str(cumulative)} known at avg {self.avg_price}, "
                    f"now reported at {average}"
                ),
            )
        if average is None:
            return FillResult(FillVerdict.MALFORMED, self, reason="a cumulative fill needs avg_price")
        increment = _EXACT.subtract(cumulative, self.filled_qty)
        notional = _EXACT.multiply(average, cumulative)
        increment_notional = _EXACT.subtract(notional, self.notional)
        if increment_notional <= 0:
            return FillResult(
                FillVerdict.CONFLICT,
                self,
                reason=(
                    f"avg_price {average} at {decimal_to_str(cumulative)} "
                    "implies a non-positive price for the new quantity"
                ),
            )
        fill = Fill(f"cum:{decimal_to_str(cumulative)}", increment, _AVERAGE.divide(increment_notional, increment))
        return FillResult(FillVerdict.APPLIED, self._with(FillReportingMode.CUMULATIVE, fill, increment_notional), fill)

    def _with(self, mode: FillReportingMode, fill: Fill, fill_notional: Decimal) -> FillLedger:
        return FillLedger(
            mode=mode,
            fill_count=self.fill_count + 1,
            filled_qty=_EXACT.add(self.filled_qty, fill.quantity),
            notional=_EXACT.add(self.notional, fill_notional),
        )

    def to_primitive(self) -> dict[str, Any]:
        return {
            "mode": None if self.mode is None else self.mode.value,
            "fill_count": self.fill_count,
            "filled_qty": decimal_to_str(self.filled_qty),
            "notional": decimal_to_str(self.notional),
        }

    @classmethod
    def from_primitive(cls, data: Mapping[str, Any]) -> FillLedger:
        return cls(
            mode=None if data["mode"] is None else FillReportingMode(data["mode"]),
            # Stores written before fills left the ledger carry the list itself.
            fill_count=data["fill_count"] if "fill_count" in data else len(data.get("fills", ())),
            filled_qty=decimal_from_str(data["filled_qty"]),
            notional=decimal_from_str(data["notional"]),
        )
