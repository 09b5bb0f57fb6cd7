"""History independence: the head stays the same size and an input costs the same lookups however
long the execution has run; the past is looked up by id (`execution_domain.history`)."""

from __future__ import annotations

import json
import re
from decimal import Decimal

from execution_domain.events import OrderEventType, ReportKey
from execution_domain.execution import Execution, Outcome, apply_order_event, mark_released, replay, request_cancel
from execution_domain.fills import Fill
from execution_domain.history import NO_HISTORY, InMemoryHistory, Remembered, UnroutedKey
from execution_domain.log import CancelRequest, LogEntry
from execution_domain.ticket_state import AnomalyCode, TicketState
from testkit.domain import ORIGIN, Folded, assert_head_matches_log, at, event, fill_event, new_execution

D = Decimal
FILLS = 20_000


class CountingHistory:
    """An `ExecutionHistory` that counts the lookups the fold makes (it can do nothing else)."""

    def __init__(self, inner: InMemoryHistory) -> None:
        self.inner = inner
        self.lookups = 0

    def fill(self, ticket_id: str, fill_id: str) -> Fill | None:
        self.lookups += 1
        return self.inner.fill(ticket_id, fill_id)

    def reports(self, ticket_id: str, event_id: str) -> tuple[ReportKey, ...]:
        self.lookups += 1
        return self.inner.reports(ticket_id, event_id)

    def unrouted(self, key: UnroutedKey) -> tuple[ReportKey, ...]:
        self.lookups += 1
        return self.inner.unrouted(key)

    def command_handled(self, command_id: str) -> bool:
        self.lookups += 1
        return self.inner.command_handled(command_id)


def skeleton(execution: Execution) -> str:
    """The head's JSON with every number (quantities, counters, timestamps' digits) blanked."""
    return re.sub(r"\d+(?:\.\d+)?", "0", json.dumps(execution.to_primitive(), sort_keys=True))


def test_an_execution_with_20000_fills_has_the_head_and_the_lookups_of_one_with_100() -> None:
    created = new_execution("rfc_partial_then_fill")
    sell = created.execution.ticket_for_intent("oi_sell_sg_bank").ticket_id  # 500 units: 20,000 x 0.01 leaves it open
    run = Folded.start(created)
    run.release(sell, at(0), "OMS-1")
    counting = CountingHistory(run.history)
    heads: dict[int, Execution] = {}
    lookups: list[int] = []
    for number in range(1, FILLS + 1):
        before = counting.lookups
        outcome = run.take(apply_order_event(run.execution, fill_event(sell, f"F{number}", "0.01", "38.10"), counting))
        lookups.append(counting.lookups - before)
        assert outcome.entry is not None and len(outcome.remembered.fills) == 1
        if number in (1, 100, FILLS):
            heads[number] = run.execution
    execution = run.execution
    record = execution.record(sell)
    assert (record.state, record.filled_qty, record.ledger.fill_count) == (TicketState.PARTIAL_FILL, D(200), FILLS)
    assert record.avg_price == D("38.10")
    # The head does not grow: after 20,000 fills it is the head after 100, digits aside.
    assert skeleton(heads[100]) == skeleton(heads[FILLS]) == skeleton(heads[1])
    assert len(json.dumps(heads[FILLS].to_primitive())) - len(json.dumps(heads[100].to_primitive())) < 20
    # Each fill costs the same lookups (its event id, its fill id), the first as the last.
    assert set(lookups) == {2}
    # The history grows instead, by id.
    assert len(run.history.fills) == FILLS and len(run.history.seen) == FILLS

    # Lookups still work across the whole past.
    old = fill_event(sell, "F5", "0.01", "38.10")
    assert run.event(old).duplicate  # the report redelivered
    assert run.event(fill_event(sell, "F5", "0.01", "38.10", event_id="F5-resent")).duplicate  # the fill under a new id
    conflict = run.event(fill_event(sell, "F5", "0.02", "38.10", event_id="F5-other"))
    assert [a.code for a in conflict.anomalies] == [AnomalyCode.FILL_CONFLICT]
    assert conflict.execution.record(sell).filled_qty == D(200)
    assert run.event(fill_event(sell, "F5", "0.02", "38.10", event_id="F5-other")).duplicate  # anomaly logged once
    # The kept entries replay to the folded head.
    assert replay(run.entries) == run.execution
    assert run.execution.seq == len(run.entries) == FILLS + 3


def test_lookups_per_input_are_bounded_for_every_input_type() -> None:
    run = Folded.start(new_execution("rfc_accept_all"))
    sell = run.execution.tickets[0].ticket_id
    counting = CountingHistory(run.history)
    seen = 0

    def counted(outcome: Outcome) -> int:
        """The lookups made to produce ``outcome`` (counted since the last call), which is then kept."""
        nonlocal seen
        made, seen = counting.lookups - seen, counting.lookups
        run.take(outcome)
        return made

    assert counted(mark_released(run.execution, sell, at(1), "OMS-1")) == 0
    assert counted(apply_order_event(run.execution, event(sell, OrderEventType.ORDER_ACCEPTED, "ack"), counting)) == 1
    assert counted(apply_order_event(run.execution, fill_event(sell, "f1", "1", "20"), counting)) == 2
    stray = event("tkt_000000000000", OrderEventType.ORDER_ACCEPTED, "stray")
    assert counted(apply_order_event(run.execution, stray, counting)) == 1
    cancel = CancelRequest("c1", at(9), ORIGIN.actor)
    assert counted(request_cancel(run.execution, cancel, counting)) == 1


def test_every_outcome_says_what_the_history_must_remember() -> None:
    run = Folded.start(new_execution("rfc_partial_then_fill"))
    sell = run.execution.tickets[0].ticket_id
    assert not run.release(sell, at(1), "OMS-1").remembered  # our own marks need no lookup later
    ack = event(sell, OrderEventType.ORDER_ACCEPTED, "ack")
    assert run.event(ack).remembered == Remembered(reports=((sell, "ack", (ack.report_key,)),))
    per_fill = fill_event(sell, "f1", "5", "38")
    outcome = run.event(per_fill)
    assert outcome.remembered == Remembered(fills=((sell, Fill("f1", D(5), D(38))),),
                                            reports=((sell, per_fill.event_id, (per_fill.report_key,)),))
    # A report that is an anomaly is remembered (a redelivery is then a duplicate), its fill is not.
    invalid = event(sell, OrderEventType.ORDER_REJECTED, "late-reject", reason="?")
    anomaly = run.event(invalid)
    assert anomaly.anomalies and anomaly.remembered == Remembered(reports=((sell, "late-reject", (invalid.report_key,)),))
    # An event id reused with other content: the history keeps every report under that id.
    reused = event(sell, OrderEventType.ORDER_ACCEPTED, "late-reject")
    again = run.event(reused)
    assert [a.code for a in again.anomalies] == [AnomalyCode.EVENT_ID_REUSED]
    assert run.history.reports(sell, "late-reject") == (invalid.report_key, reused.report_key)
    assert replay(run.entries) == run.execution  # replay reproduces the reuse anomaly with its own history


def test_cumulative_fills_are_not_remembered_by_id() -> None:
    run = Folded.start(new_execution("rfc_partial_then_fill"))
    sell = run.execution.tickets[0].ticket_id
    run.release(sell, at(1), "OMS-1")
    report = event(sell, OrderEventType.PARTIAL_FILL, "c1", filled_qty="100", avg_price="38")
    outcome = run.event(report)
    assert outcome.changes[0].fill is not None and outcome.remembered.fills == ()
    assert run.event(event(sell, OrderEventType.PARTIAL_FILL, "c1-resent", filled_qty="100", avg_price="38")).duplicate


def test_no_history_knows_nothing_and_remembered_is_empty_by_default() -> None:
    assert NO_HISTORY.fill("t", "f") is None and NO_HISTORY.reports("t", "e") == ()
    assert NO_HISTORY.unrouted(("x", "t", "e")) == () and not NO_HISTORY.command_handled("c")
    assert not Remembered() and Remembered(commands=("c",))
    history = InMemoryHistory()
    history.remember(Remembered(commands=("c",), fills=(("t", Fill("f", D(1), D(2))),)))
    assert history.command_handled("c") and history.fill("t", "f") == Fill("f", D(1), D(2))
    assert history.fill("other-ticket", "f") is None  # fills are per ticket


def test_a_head_restored_from_json_folds_on_with_the_history() -> None:
    # What a restarted processor does: the head from its store, the history from its own.
    run = Folded.start(new_execution("rfc_partial_then_fill"))
    sell = run.execution.tickets[0].ticket_id
    run.release(sell, at(1), "OMS-1")
    run.event(fill_event(sell, "f1", "200", "38.10"))
    head = Execution.from_primitive(json.loads(json.dumps(run.execution.to_primitive())), run.execution.definition)
    entries = [LogEntry.from_primitive(json.loads(json.dumps(e.to_primitive()))) for e in run.entries]
    assert head == run.execution == replay(entries)
    assert apply_order_event(head, fill_event(sell, "f1", "200", "38.10"), run.history).duplicate
    assert apply_order_event(head, fill_event(sell, "f1", "200", "38.10", event_id="x"), run.history).duplicate
    assert_head_matches_log(run)
