"""State stores are brought up to date from the changelog: a surviving store replays only the
tail it missed; an empty state directory is rebuilt from the whole changelog."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, TopicPartition

from testkit.processor import ProcessorHarness, ScriptedOms, load_sample

pytestmark = pytest.mark.integration


def changelog_ends(harness: ProcessorHarness) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": harness.bootstrap, "group.id": "ends", "isolation.level": "read_committed"})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(harness.topics.executions_changelog, p), 10, cached=False)[1]
                for p in range(harness.partitions)}
    finally:
        consumer.close()


def changelog_records_between(harness: ProcessorHarness, start: dict[int, int], end: dict[int, int]) -> int:
    consumer = Consumer({"bootstrap.servers": harness.bootstrap, "group.id": "count", "isolation.level": "read_committed"})
    count = 0
    try:
        for partition, first in start.items():
            if end[partition] <= first:
                continue
            tp = TopicPartition(harness.topics.executions_changelog, partition, first)
            consumer.assign([tp])
            while consumer.position([tp])[0].offset < end[partition]:
                count += sum(1 for m in consumer.consume(500, timeout=1) if not m.error())
        return count
    finally:
        consumer.close()


def restored(running) -> int:
    return sum(records for store, _, records in running.app.state.restored if store == "executions")


def run_one_execution(harness: ProcessorHarness, key: str, sample: str) -> str:
    raw = load_sample(sample)
    harness.publish_proposal(raw)
    result = harness.result(harness.create(key, raw["proposal_id"], raw["version_no"]))
    assert result["outcome"] in ("CREATED", "REPLAYED")
    return result["execution_id"]


def test_restart_replays_only_the_changelog_tail_and_an_empty_store_is_rebuilt(harness: ProcessorHarness, tmp_path) -> None:
    # p1 folds a first execution to completion, then stops cleanly.
    p1 = harness.start("p1")
    first = run_one_execution(harness, "k-restore-1", "sgd_multi_currency")
    ScriptedOms(harness).run_until(lambda: harness.latest_status(first) == "FILLED")
    p1.stop()
    assert restored(p1) == 0  # a new store, an empty changelog

    # p2, with its own state directory, restores everything p1 wrote, then writes more.
    before_p2 = changelog_ends(harness)
    p2 = harness.start("p2")
    assert restored(p2) == changelog_records_between(harness, {p: 0 for p in before_p2}, before_p2) > 0
    oms = ScriptedOms(harness)
    oms.pump()  # p1's instructions were answered already; only new ones matter
    second = run_one_execution(harness, "k-restore-2", "rfc_accept_all")
    oms.run_until(lambda: harness.latest_status(second) == "FILLED")
    p2.stop()
    after_p2 = changelog_ends(harness)

    # p1 comes back with its surviving store: it replays only what p2 added.
    tail = changelog_records_between(harness, before_p2, after_p2)
    p1_again = harness.start("p1")
    print(f"surviving store restored {restored(p1_again)} changelog records (tail), "
          f"of {changelog_records_between(harness, {p: 0 for p in after_p2}, after_p2)} in the changelog")
    assert restored(p1_again) == tail > 0
    p1_again.stop()

    # An empty state directory is rebuilt from the whole changelog, and serves the same state.
    total = changelog_records_between(harness, {p: 0 for p in after_p2}, after_p2)
    p3 = harness.start("p3", state_dir=tmp_path / "empty-state")
    assert restored(p3) == total
    raw = load_sample("rfc_accept_all")
    replay = harness.result(harness.create("k-restore-2", raw["proposal_id"], raw["version_no"]))
    assert replay["outcome"] == "REPLAYED"
    assert replay["execution"]["status"] == "FILLED"
    p3.stop()
