"""The pure parts of the bench's history and soak instruments (bench.history, bench.soak)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.history import Produced, changelog_window, repetitions, stages, window, window_timing
from bench.soak import Sample, per_minute, rss_summary, sparkline, within


def changes(transactions: list[list[int]], start_offset: int = 10) -> list[Produced]:
    """State changes of one partition: each inner list the producer timestamps (ms) of one transaction;
    a commit marker takes one offset after each transaction."""
    rows, offset = [], start_offset
    for timestamps in transactions:
        for ts in timestamps:
            rows.append(Produced(0, offset, ts, b"exec", 100))
            offset += 1
        offset += 1  # the commit marker
    return rows


def test_window_timing_inside_one_transaction_counts_every_gap_as_fold_time() -> None:
    rows = changes([[1000, 1002, 1004, 1006, 1008]])

    timing = window_timing(rows, 0, 4)

    assert timing.events == 4 and timing.commits == 0 and math.isnan(timing.commit_gap_ms)
    assert timing.fold_eps == pytest.approx(500.0) and timing.eps == pytest.approx(500.0)


def test_window_timing_across_a_commit_leaves_the_commit_gap_out_of_the_fold_rate() -> None:
    rows = changes([[1000, 1001, 1002], [1052, 1053, 1054]])  # 50 ms between the transactions

    timing = window_timing(rows, 0, 5)

    assert timing.commits == 1 and timing.commit_gap_ms == 50
    assert timing.fold_eps == pytest.approx(4 / 0.004)
    assert timing.eps == pytest.approx(5 / 0.054)


def test_window_timing_of_records_out_of_offset_order_is_refused() -> None:
    rows = changes([[1, 2, 3]])
    with pytest.raises(ValueError, match="out of order"):
        window_timing([rows[0], rows[2], rows[1]], 0, 2)
    with pytest.raises(ValueError, match="outside"):
        window_timing(rows, 0, 3)


@given(st.lists(st.lists(st.integers(0, 5), min_size=1, max_size=20), min_size=1, max_size=10), st.integers(0, 200))
def test_window_timing_fold_and_commit_time_add_up_to_the_window(txns: list[list[int]], gap: int) -> None:
    stamps, now = [], 0
    for steps in txns:
        stamp = []
        for step in steps:
            now += step
            stamp.append(now)
        stamps.append(stamp)
        now += gap
    rows = changes(stamps)
    if len(rows) < 2:
        return
    timing = window_timing(rows, 0, len(rows) - 1)
    assert timing.commits == len(txns) - 1 and timing.fold_events + timing.commits == timing.events
    assert timing.fold_ms + timing.commit_ms == timing.total_ms == rows[-1].timestamp_ms - rows[0].timestamp_ms


def test_window_timings_pool_by_adding_events_and_times() -> None:
    one = window_timing(changes([[0, 10]]), 0, 1)
    two = window_timing(changes([[0, 30], [40, 50]]), 0, 3)

    pooled = one + two

    assert pooled.events == 4 and pooled.fold_events == 3 and pooled.commits == 1
    assert pooled.fold_eps == pytest.approx(3 / 0.050) and pooled.eps == pytest.approx(4 / 0.060)


def test_stages_and_windows_stay_inside_each_stage() -> None:
    assert stages([100, 1_000, 10_000]) == [(0, 100), (101, 1_000), (1_001, 10_000)]
    assert window(100, 0) == (0, 100)  # the accept (event 0) and the first 100 fills
    assert window(1_000, 100) == (101, 1_000)
    assert window(100_000, 10_000) == (97_000, 100_000)  # the last WINDOW fills
    assert repetitions([100, 1_000, 10_000, 100_000]) == [30, 4, 1, 1]  # MIN_WINDOW_EVENTS fills or more


def test_changelog_window_takes_the_whole_transactions_that_wrote_the_entries() -> None:
    def rec(offset: int, key: str, size: int) -> Produced:
        return Produced(1, offset, 0, key.encode(), size)

    log = [rec(0, "x/e1", 300), rec(1, "l/e1/0000000004", 80), rec(2, "f/e1/t/F1", 60),  # transaction 1
           rec(4, "x/e1", 310), rec(5, "l/e1/0000000005", 81), rec(6, "l/e1/0000000006", 82),  # transaction 2
           rec(8, "x/e1", 320), rec(9, "l/e1/0000000007", 83)]  # transaction 3

    span, head = changelog_window(log, "e1", range(5, 7))

    assert [r.offset for r in span] == [4, 5, 6] and head == 310
    with pytest.raises(ValueError, match="found 0 of the 1"):
        changelog_window(log, "e1", range(9, 10))


def test_sparkline_maps_lowest_to_highest_and_a_flat_series_to_the_lowest_bar() -> None:
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert sparkline([5, 5, 5]) == "▁▁▁"
    assert sparkline([]) == ""


def test_rss_summary_compares_the_end_with_the_first_sample_past_a_minute() -> None:
    samples = [Sample(t, rss, 0, 0) for t, rss in [(0, 50), (30, 90), (58, 100), (63, 110), (120, 120), (180, 130)]]

    summary = rss_summary(samples)

    assert summary["rss_1min_mb"] == 110 and summary["rss_1min_at_s"] == 63
    assert summary["rss_end_mb"] == 130 and summary["ratio"] == pytest.approx(130 / 110)
    assert summary["rss_peak_mb"] == 130
    assert within(summary["ratio"]) and not within(1.25) and not within(0.75)
    assert [s.at_s for s in per_minute(samples)] == [0, 63, 120, 180]


def test_rss_summary_of_a_load_shorter_than_a_minute_is_refused() -> None:
    with pytest.raises(ValueError, match="no RSS sample after 60 s"):
        rss_summary([Sample(5, 100, 0, 0)])
