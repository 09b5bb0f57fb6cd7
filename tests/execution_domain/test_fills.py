from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from execution_domain.events import EventDetails
from execution_domain.fills import Fill, FillLedger, FillReportingMode, FillResult, FillVerdict

D = Decimal


def per_fill(fill_id: str, qty: str, price: str) -> EventDetails:
    return EventDetails(fill_id=fill_id, last_qty=D(qty), last_price=D(price))


def cumulative(qty: str, avg: str | None) -> EventDetails:
    return EventDetails(filled_qty=D(qty), avg_price=None if avg is None else D(avg))


class Book:
    """A ledger with the fills it applied, by id: the part of an execution's history a ledger needs."""

    def __init__(self) -> None:
        self.ledger = FillLedger()
        self.fills: dict[str, Fill] = {}  # fill_id -> fill applied, in arrival order

    def record(self, details: EventDetails) -> FillResult:
        result = self.ledger.record(details, None if details.fill_id is None else self.fills.get(details.fill_id))
        if result.verdict is FillVerdict.APPLIED:
            assert result.fill is not None
            self.fills[result.fill.fill_id] = result.fill
        self.ledger = result.ledger
        return result


def book_of(*details: EventDetails) -> Book:
    book = Book()
    for item in details:
        book.record(item)
    return book


def apply_all(*details: EventDetails) -> FillLedger:
    return book_of(*details).ledger


def test_per_fill_reports_add_up_and_average_by_quantity() -> None:
    ledger = apply_all(per_fill("f1", "4", "100"), per_fill("f2", "6", "110"))
    assert ledger.mode is FillReportingMode.PER_FILL
    assert (ledger.filled_qty, ledger.avg_price, ledger.fill_count) == (D(10), D(106), 2)


def test_the_same_fill_twice_is_a_duplicate_and_changes_nothing() -> None:
    book = book_of(per_fill("f1", "4", "100"))
    ledger = book.ledger
    result = ledger.record(per_fill("f1", "4", "100.0"), known=book.fills["f1"])
    assert result.verdict is FillVerdict.DUPLICATE and result.ledger is ledger and result.fill == book.fills["f1"]


@pytest.mark.parametrize("changed", [per_fill("f1", "5", "100"), per_fill("f1", "4", "101")])
def test_the_same_fill_id_with_other_quantity_or_price_is_a_conflict(changed: EventDetails) -> None:
    book = book_of(per_fill("f1", "4", "100"))
    ledger = book.ledger
    result = ledger.record(changed, known=book.fills["f1"])
    assert result.verdict is FillVerdict.CONFLICT and result.ledger is ledger
    assert "f1" in result.reason and result.fill == book.fills["f1"]  # the fill that stands


def test_a_per_fill_report_is_judged_by_what_is_known_under_its_fill_id_not_by_the_ledger() -> None:
    # The ledger keeps totals only: whether a fill id was seen is the history's answer (``known``).
    ledger = apply_all(per_fill("f1", "4", "100"))
    assert ledger.record(per_fill("f1", "4", "100")).verdict is FillVerdict.APPLIED  # nothing known: a new fill
    assert ledger.record(per_fill("f9", "4", "100"), known=Fill("f9", D(4), D(100))).verdict is FillVerdict.DUPLICATE


def test_cumulative_reports_become_increments_at_the_implied_price() -> None:
    book = Book()
    results = [book.record(cumulative("4", "100")), book.record(cumulative("10", "106"))]
    ledger = book.ledger
    assert ledger.mode is FillReportingMode.CUMULATIVE
    assert [(r.fill.fill_id, r.fill.quantity, r.fill.price) for r in results if r.fill is not None] == [
        ("cum:4", D(4), D(100)),
        ("cum:10", D(6), D(110)),
    ]
    assert (ledger.filled_qty, ledger.avg_price, ledger.fill_count) == (D(10), D(106), 2)


def test_cumulative_reports_need_no_history() -> None:
    # Cumulative levels are deduplicated against the ledger's own quantity: nothing is looked up.
    ledger = apply_all(cumulative("4", "100"))
    assert ledger.record(cumulative("4", "100")).verdict is FillVerdict.DUPLICATE
    assert ledger.record(cumulative("2", "100")).verdict is FillVerdict.STALE


def test_a_cumulative_report_below_the_known_quantity_is_stale() -> None:
    ledger = apply_all(cumulative("10", "106"))
    result = ledger.record(cumulative("4", "100"))
    assert result.verdict is FillVerdict.STALE and result.ledger is ledger


def test_a_repeated_cumulative_level_is_a_duplicate_unless_its_average_differs() -> None:
    ledger = apply_all(cumulative("10", "106"))
    assert ledger.record(cumulative("10", "106.00")).verdict is FillVerdict.DUPLICATE
    assert ledger.record(cumulative("10", "107")).verdict is FillVerdict.CONFLICT


def test_a_cumulative_average_implying_a_non_positive_increment_price_is_a_conflict() -> None:
    ledger = apply_all(cumulative("5", "100"))
    assert ledger.record(cumulative("10", "40")).verdict is FillVerdict.CONFLICT


@pytest.mark.parametrize(
    ("first", "second"),
    [(per_fill("f1", "4", "100"), cumulative("10", "100")), (cumulative("4", "100"), per_fill("f1", "4", "100"))],
)
def test_mixing_reporting_modes_on_one_ticket_is_refused(first: EventDetails, second: EventDetails) -> None:
    ledger = apply_all(first)
    assert ledger.record(second).verdict is FillVerdict.MIXED_MODE


@pytest.mark.parametrize(
    "details",
    [
        EventDetails(fill_id="f1", last_qty=D(1)),
        per_fill("f1", "0", "100"),
        per_fill("f1", "1", "-1"),
        cumulative("-1", "100"),
        cumulative("5", None),
    ],
)
def test_malformed_fill_reports_change_nothing(details: EventDetails) -> None:
    result = FillLedger().record(details)
    assert result.verdict is FillVerdict.MALFORMED and result.ledger == FillLedger()


def test_a_report_without_fill_details_is_no_fill() -> None:
    assert FillLedger().record(EventDetails(reason="x")).verdict is FillVerdict.NO_DETAILS


def test_ledger_round_trips() -> None:
    ledger = apply_all(per_fill("f1", "4", "100.25"), per_fill("f2", "1", "99"))
    assert FillLedger.from_primitive(ledger.to_primitive()) == ledger


def test_ledger_primitive_holds_totals_only() -> None:
    ledger = apply_all(*(per_fill(f"f{i}", "1", "100") for i in range(50)))
    assert ledger.to_primitive() == {"mode": "PER_FILL", "fill_count": 50, "filled_qty": "50", "notional": "5000"}


def test_a_ledger_stored_with_its_fills_still_decodes_and_counts_them() -> None:
    # The stored form before fills moved to the history (written by the previous release).
    old = {"mode": "CUMULATIVE", "fills": [{"fill_id": "cum:4", "quantity": "4", "price": "100"},
                                           {"fill_id": "cum:10", "quantity": "6", "price": "110"}],
           "filled_qty": "10", "notional": "1060"}
    ledger = FillLedger.from_primitive(old)
    assert ledger == apply_all(cumulative("4", "100"), cumulative("10", "106"))
    assert (ledger.fill_count, ledger.filled_qty, ledger.avg_price) == (2, D(10), D(106))


# --- properties ----------------------------------------------------------------------------------

quantities = st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2)
prices = st.decimals(min_value=D("0.0001"), max_value=D("10000"), places=4)
fill_lists = st.lists(st.tuples(quantities, prices), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(fill_lists, st.data())
def test_filled_quantity_and_average_ignore_duplicates_and_order(
    fills: list[tuple[Decimal, Decimal]], data: st.DataObject
) -> None:
    reports = [EventDetails(fill_id=f"f{i}", last_qty=q, last_price=p) for i, (q, p) in enumerate(fills)]
    deliveries = data.draw(st.lists(st.sampled_from(reports), max_size=20)) + reports  # every fill at least once
    deliveries = data.draw(st.permutations(deliveries))
    book = Book()
    previous = D(0)
    for report in deliveries:
        book.record(report)
        assert book.ledger.filled_qty >= previous  # never decreases through ordinary fills
        previous = book.ledger.filled_qty
    ledger = book.ledger
    expected_qty = sum((q for q, _ in fills), D(0))
    assert ledger.filled_qty == expected_qty and ledger.fill_count == len(fills)
    assert ledger.avg_price == sum((q * p for q, p in fills), D(0)) / expected_qty
    assert ledger == apply_all(*reports)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(quantities, prices), min_size=1, max_size=8), st.data())
def test_cumulative_reports_in_any_order_end_at_the_highest_level(
    steps: list[tuple[Decimal, Decimal]], data: st.DataObject
) -> None:
    # Build a consistent CumQty/AvgPx history, then deliver it shuffled with repeats.
    history, total, notional = [], D(0), D(0)
    for qty, price in steps:
        total += qty
        notional += qty * price
        history.append(EventDetails(filled_qty=total, avg_price=notional / total))
    deliveries = data.draw(st.permutations(history + data.draw(st.lists(st.sampled_from(history), max_size=8))))
    ledger = FillLedger()
    for report in deliveries:
        before = ledger.filled_qty
        ledger = ledger.record(report).ledger
        assert ledger.filled_qty >= before
    assert ledger.filled_qty == total
    assert ledger.avg_price == history[-1].avg_price


def test_every_permutation_of_three_fills_gives_the_same_ledger_totals() -> None:
    reports = [per_fill("a", "1", "10"), per_fill("b", "2", "11"), per_fill("c", "3", "12")]
    ledgers = (apply_all(*order) for order in itertools.permutations(reports))
    totals = {(ledger.filled_qty, ledger.avg_price) for ledger in ledgers}
    assert len(totals) == 1
