"""The quixstreams peer's fold (bench.peer_fold) against the reference fold of the processor's
contract (testkit.streams.reference_fold): same state changes byte for byte, same pieces stored.
No broker: the fold is driven with a dict per execution, as quixstreams scopes state per key."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

import testkit.streams as sf
from bench.peer_fold import DictState, PeerFold, StateHistory, entry_key, read_seed, seed_line
from execution_domain import Execution, OrderEvent
from processor.runtime.journal import OutputRecord
from processor.state_codecs import DefinitionCodec, FillCodec, HeadCodec, ReportsCodec
from testkit.processor import T0
from wire import formats, serde
from wire import records as translate
from wire.topics import TopicNames

TOPICS = TopicNames.defaults("peer-test", {})


def planned(seed: int, count: int) -> list[sf.PlannedExecution]:
    plans = sf.build_executions(random.Random(seed), count, f"peer{seed}")
    for index, plan in enumerate(plans):  # what create_all stamps on each plan's create command
        plan.command_id = f"cmd-{seed}-{index}"
        plan.issued_at = T0 + timedelta(seconds=index + 1)
    return plans


def seeded(plans: list[sf.PlannedExecution]) -> tuple[dict[str, tuple[bytes, bytes]], dict[str, int]]:
    """The seed the bench writes from the processor's store: each execution as created (definition, head),
    and how many state changes its creation made."""
    created = sf.reference_fold(plans, []).by_execution
    heads = HeadCodec(lambda _: None)
    lines = [seed_line(eid, DefinitionCodec().encode(e.execution.definition), heads.encode(e.execution))
             for eid, e in created.items()]
    return read_seed(lines), {eid: len(e.state_changes) for eid, e in created.items()}


def fold_all(plans: list[sf.PlannedExecution], events: list[OrderEvent], seed: dict[str, tuple[bytes, bytes]]
             ) -> tuple[dict[str, DictState], list[OutputRecord]]:
    fold = PeerFold(TOPICS, seed, formats.WireFormats().topic_codecs(TOPICS))  # no registry: single-object
    states: dict[str, DictState] = {}
    records: list[OutputRecord] = []
    for event in events:
        value = serde.encode("OrderEvent", translate.order_event_to_record(event))
        records.extend(fold.on_order_event(value, states.setdefault(event.execution_id, DictState())))
    return states, records


@pytest.mark.parametrize("seed", [7, 20260218])
def test_peer_fold_of_a_seeded_stream_produces_the_reference_state_changes_byte_for_byte(seed: int) -> None:
    plans = planned(seed, 4)
    events = sf.build_event_stream(random.Random(seed), plans)
    reference = sf.reference_fold(plans, events)
    seed_values, created = seeded(plans)

    _, records = fold_all(plans, events, seed_values)

    changes: dict[str, list[bytes]] = {}
    for record in records:
        assert record.topic == TOPICS.execution_state_changes  # no dependencies: nothing released, nothing ended
        assert record.key is not None
        changes.setdefault(record.key.decode(), []).append(record.value)
    for eid, expected in reference.by_execution.items():
        assert changes.get(eid, []) == expected.state_changes[created[eid]:]


def test_peer_fold_stores_the_head_log_and_history_the_reference_fold_ends_with() -> None:
    plans = planned(11, 3)
    events = sf.build_event_stream(random.Random(11), plans)
    reference = sf.reference_fold(plans, events)
    seed_values, created = seeded(plans)

    states, _ = fold_all(plans, events, seed_values)

    for eid, expected in reference.by_execution.items():
        state = states[eid]
        definition = DefinitionCodec().decode(state.values[b"d"])
        head: Execution = HeadCodec({eid: definition}.get).decode(state.values[b"x"])
        assert head == expected.execution
        for entry in expected.entries:  # the creation's entries are the processor's (seeded), the rest the peer's
            assert (entry_key(entry.seq) in state.values) == (entry.seq > created[eid])
        history = StateHistory(state, FillCodec(), ReportsCodec())
        for (ticket_id, fill_id), fill in expected.history.fills.items():
            assert history.fill(ticket_id, fill_id) == fill
        for (ticket_id, event_id), reports in expected.history.seen.items():
            assert history.reports(ticket_id, event_id) == reports


def test_peer_fold_of_an_event_for_an_execution_it_was_not_seeded_with_raises_unknown_execution() -> None:
    plans = planned(3, 1)
    events = sf.build_event_stream(random.Random(3), plans)

    with pytest.raises(LookupError, match="unknown execution"):
        fold_all(plans, events[:1], {})
