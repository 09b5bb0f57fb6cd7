"""History independence through the real broker: an execution with 100,000 fills on one ticket
and a proposal with 1,000 tickets are folded to the right final state by one processor that
never restarts, and no record on any topic grows with the execution's history.

Regression tests for the crash loop where one execution with ~930 fills stopped its partition
(the stored execution and every state change carried the whole history past 1 MB)."""

from __future__ import annotations

import copy
import time
import uuid
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from execution_domain import EventDetails, OrderEvent, OrderEventType, parse_artifact
from execution_domain.proposal import seal_artifact
from execution_domain.tickets import generate_tickets
from testkit.processor import T0, ProcessorHarness, load_sample, wait_until
from testkit.streams import InputProgress
from wire import records as translate

pytestmark = pytest.mark.integration

FILLS = 100_000
TICKETS = 1_000
KB = 1024
BROKER_DEFAULT_LIMIT = 1_048_588  # message.max.bytes of a broker left at its defaults


def every_record_size(bootstrap: str, topics: list[str]) -> dict[str, tuple[int, int]]:
    """topic -> (records, largest key + value + headers in bytes), read_uncommitted: aborted ones too."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"sizes-{uuid.uuid4().hex}",
                         "isolation.level": "read_uncommitted", "enable.auto.commit": False,
                         "enable.partition.eof": True, "fetch.max.bytes": 64 * 1024 * 1024})
    sizes: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    try:
        metadata = consumer.list_topics(timeout=10)
        ends = {}
        for topic in topics:
            for partition in metadata.topics[topic].partitions:
                tp = TopicPartition(topic, partition)
                ends[(topic, partition)] = consumer.get_watermark_offsets(tp, timeout=10, cached=False)[1]
        consumer.assign([TopicPartition(t, p, 0) for (t, p), end in ends.items() if end > 0])
        remaining = {key for key, end in ends.items() if end > 0}
        deadline = time.monotonic() + 180
        while remaining and time.monotonic() < deadline:
            for message in consumer.consume(5000, timeout=0.5):
                topic, partition, offset = message.topic(), message.partition(), message.offset()
                if message.error():  # the end of a partition (past its last commit marker)
                    if offset is not None and offset >= ends[(topic, partition)]:
                        remaining.discard((topic, partition))
                    continue
                size = len(message.value() or b"") + len(message.key() or b"") + sum(
                    len(k) + len(v or b"") for k, v in message.headers() or [])
                entry = sizes[topic]
                entry[0] += 1
                entry[1] = max(entry[1], size)
        assert not remaining, f"could not read to the end of {sorted(remaining)[:5]}"
    finally:
        consumer.close()
    return {topic: (count, largest) for topic, (count, largest) in sizes.items()}


def all_topics(harness: ProcessorHarness) -> list[str]:
    t = harness.topics
    return [t.approved_proposals, t.execution_commands, t.command_results, t.trade_tickets, t.order_events,
            t.execution_state_changes, t.execution_snapshots, t.dead_letters, t.admission_requests,
            t.admission_decisions, t.proposals_changelog, t.executions_changelog]


def sealed(base: str, proposal_id: str, intents: list[dict[str, Any]]) -> dict[str, Any]:
    raw = copy.deepcopy(load_sample(base))
    raw.update({"proposal_id": proposal_id, "version_no": 1, "portfolio_id": f"pf_{proposal_id}"})
    raw["trades_and_funding"] = {"funding_claimed": False, "intents": intents}
    return seal_artifact(raw)


def sell(index: int, quantity: int) -> dict[str, Any]:
    return {"intent_type": "SECURITY_TRADE", "intent_id": f"oi_sell_{index:04d}", "dependencies": [],
            "instrument_id": f"SG_EQ_INSTRUMENT_{index:06d}", "side": "SELL", "quantity": str(quantity),
            "currency": "SGD", "indicative_price": "12.34"}


def report(execution_id: str, ticket_id: str, n: int, kind: OrderEventType, details: EventDetails) -> OrderEvent:
    return OrderEvent(event_id=f"E-{ticket_id}-{n}", execution_id=execution_id, ticket_id=ticket_id,
                      source="oms-sim", event_type=kind, external_order_id=f"OMS-{ticket_id}",
                      occurred_at=T0 + timedelta(minutes=5, milliseconds=n), details=details)


def created(harness: ProcessorHarness, raw: dict[str, Any], key: str) -> tuple[str, list[str]]:
    harness.publish_proposal(raw)
    result = harness.result(harness.create(key, raw["proposal_id"], raw["version_no"]), timeout_s=120)
    assert result["outcome"] == "CREATED", result
    tickets = generate_tickets(parse_artifact(raw), translate.policy_from_record({
        "max_slippage_bps": "25"}))
    return result["execution_id"], [ticket.ticket_id for ticket in tickets]


def started_once(harness: ProcessorHarness, process: Any) -> None:
    assert process.process.poll() is None, f"the processor exited with {process.process.returncode}"
    starts = process.log_path.read_text(errors="replace").count("starting processor")
    assert starts == 1, f"the processor started {starts} times"


def test_execution_with_100000_fills_on_one_ticket_folds_to_filled_and_no_record_grows_with_history(
    harness: ProcessorHarness,
) -> None:
    processor = harness.spawn("p1")
    raw = sealed("rfc_partial_then_fill", "prop_history_100k", [sell(0, FILLS)])
    execution_id, (ticket_id,) = created(harness, raw, f"key-100k-{uuid.uuid4().hex[:6]}")

    accepted = report(execution_id, ticket_id, 0, OrderEventType.ORDER_ACCEPTED, EventDetails())
    fills = [report(execution_id, ticket_id, n, OrderEventType.FILLED if n == FILLS else OrderEventType.PARTIAL_FILL,
                    EventDetails(fill_id=f"F{n}", last_qty=Decimal(1), last_price=Decimal("12.34") + n % 7))
             for n in range(1, FILLS + 1)]
    redelivered = fills[17]  # an old fill sent again at the end: still known, still a duplicate
    harness.send_events([accepted, *fills, redelivered])
    InputProgress(harness).wait_for(FILLS + 2, 240, "100,000 fills folded")  # under pytest's 300 s

    harness.outputs.drain()  # about 100,000 state changes to decode before the snapshot row is seen
    final = wait_until(lambda: (row := harness.snapshot(execution_id)) and row["status"] == "FILLED" and row,
                       60, what="the execution-snapshots row to say FILLED")
    (ticket,) = final["tickets"]
    assert ticket["status"] == "FILLED" and ticket["filled_qty"] == Decimal(FILLS) and ticket["overfill_qty"] == 0
    assert final["is_complete"] and final["open_ticket_count"] == 0
    # creation, the release mark, the acknowledgement and one change per fill; the redelivery changed nothing
    assert final["last_sequence"] == 2 + 1 + FILLS
    started_once(harness, processor)

    sizes = every_record_size(harness.bootstrap, all_topics(harness))
    print({topic.rpartition(".")[2]: size for topic, size in sizes.items()})
    too_large = {topic: largest for topic, (_, largest) in sizes.items() if largest > 64 * KB}
    assert not too_large, f"records over 64 KB: {too_large}"
    assert sizes[harness.topics.execution_state_changes][0] >= FILLS
    assert not harness.dead_letters()


def test_proposal_with_1000_tickets_folds_to_filled_with_every_record_under_half_the_broker_limit(
    harness: ProcessorHarness,
) -> None:
    processor = harness.spawn("p1")
    raw = sealed("rfc_partial_then_fill", "prop_history_1000", [sell(i, 100 + i) for i in range(TICKETS)])
    execution_id, ticket_ids = created(harness, raw, f"key-1000-{uuid.uuid4().hex[:6]}")
    assert len(ticket_ids) == TICKETS
    wait_until(lambda: len(harness.instructions(execution_id)) >= TICKETS, 120, what="every ticket released")
    assert len({i["ticket"]["ticket_id"] for i in harness.instructions(execution_id)}) == TICKETS

    quantities = {t: 100 + i for i, t in enumerate(ticket_ids)}
    events = [report(execution_id, t, 0, OrderEventType.ORDER_ACCEPTED, EventDetails()) for t in ticket_ids]
    events += [report(execution_id, t, 1, OrderEventType.FILLED,
                      EventDetails(fill_id=f"F-{t}", last_qty=Decimal(q), last_price=Decimal("12.34")))
               for t, q in quantities.items()]
    harness.send_events(events)

    final = wait_until(lambda: (row := harness.snapshot(execution_id)) and row["status"] == "FILLED" and row,
                       300, what="the execution-snapshots row to say FILLED")
    assert len(final["tickets"]) == TICKETS and all(t["status"] == "FILLED" for t in final["tickets"])
    assert final["is_complete"] and final["ticket_count"] == TICKETS
    started_once(harness, processor)

    sizes = every_record_size(harness.bootstrap, all_topics(harness))
    print({topic.rpartition(".")[2]: size for topic, size in sizes.items()})
    too_large = {topic: largest for topic, (_, largest) in sizes.items() if largest > BROKER_DEFAULT_LIMIT // 2}
    assert not too_large, f"records over half the broker's default limit: {too_large}"
    assert not harness.dead_letters()
