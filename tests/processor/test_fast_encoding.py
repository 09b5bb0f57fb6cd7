"""The processor's cached encodings (stored execution JSON, state changes with the lifecycle
log spliced in pre-encoded) give exactly the bytes of the plain encodings, at every step of a
seeded stream with partial fills, duplicates, reorderings and cancels."""

from __future__ import annotations

import io
import random
from datetime import datetime

import orjson
import pytest
from fastavro import schemaless_writer
from hypothesis import given
from hypothesis import strategies as st

from execution_domain import Execution, apply_order_event, mark_released
from processor.outputs import StateChangeEncoder
from processor.state_codecs import ExecutionCodec
from testkit.streams import build_event_stream, build_executions, reference_fold
from wire import records as translate
from wire import serde


def _states_along_a_stream(seed: int, executions: int) -> list[tuple[Execution, object]]:
    """(execution, outcome) after every applied order event and release of a seeded stream."""
    rng = random.Random(seed)
    planned = build_executions(rng, executions, f"fast{seed}")
    for index, plan in enumerate(planned):  # what `create_all` sets when it sends the create commands
        plan.command_id, plan.issued_at = f"cmd-{index}", datetime(2026, 11, 24, 9, 0, index)
    events = build_event_stream(rng, planned)
    reference = reference_fold(planned, [])
    current = {eid: expected.execution for eid, expected in reference.by_execution.items()}
    steps = []
    for event in events:
        outcome = apply_order_event(current[event.execution_id], event)
        if outcome.entry is None:
            continue
        steps.append((outcome.execution, outcome))
        execution = outcome.execution
        for ticket in outcome.tickets_to_submit:
            released = mark_released(execution, ticket.ticket_id, event.occurred_at)
            execution = released.execution
            steps.append((execution, released))
        current[event.execution_id] = execution
    return steps


@pytest.fixture(scope="module")
def stream_states() -> list[tuple[Execution, object]]:
    return _states_along_a_stream(seed=20261124, executions=6)


def test_cached_stored_execution_json_equals_plain_orjson_at_every_step(stream_states) -> None:
    assert len(stream_states) > 200
    codec = ExecutionCodec()
    for execution, _ in stream_states:
        assert codec.encode(execution) == orjson.dumps(execution.to_primitive())


def test_spliced_state_change_equals_the_plain_encoding_at_every_step(stream_states) -> None:
    encoder = StateChangeEncoder()
    at = datetime(2026, 11, 24, 12, 0, 0)
    for execution, outcome in stream_states:
        seq = outcome.entry.seq
        common = dict(change_id=f"{execution.execution_id}/{seq}", sequence=seq, occurred_at=at,
                      correlation_id="corr", cause_kind="ORDER_EVENT", cause_id=f"ev-{seq}", outcomes=outcome)
        plain = encoder.encode(translate.state_change_record(**common))
        spliced = encoder.encode_spliced(translate.state_change_record(**common, with_events=False), execution)
        assert spliced == plain


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_zigzag_varint_is_avros_long_encoding(value: int) -> None:
    out = io.BytesIO()
    schemaless_writer(out, "long", value)
    assert serde.zigzag_varint(value) == out.getvalue()


def test_splice_refuses_a_record_that_does_not_end_with_an_empty_array_and_the_tail() -> None:
    with pytest.raises(ValueError, match="empty array"):
        serde.splice_array_before_tail(b"\x02abc\x04", b"\x04", 1, b"x")
    assert serde.splice_array_before_tail(b"\x02\x00\x04", b"\x04", 0, b"") == b"\x02\x00\x04"
    assert serde.splice_array_before_tail(b"\x02\x00\x04", b"\x04", 2, b"ab") == b"\x02\x04ab\x00\x04"


def _plain_and_spliced(encoder: StateChangeEncoder, execution: Execution, outcome) -> tuple[bytes, bytes]:
    seq = outcome.entry.seq
    common = dict(change_id=f"{execution.execution_id}/{seq}", sequence=seq, occurred_at=datetime(2026, 11, 24, 12),
                  correlation_id="corr", cause_kind="ORDER_EVENT", cause_id=f"ev-{seq}", outcomes=outcome)
    plain = encoder.encode(translate.state_change_record(**common))
    spliced = encoder.encode_spliced(translate.state_change_record(**common, with_events=False), execution)
    return plain, spliced


def test_spliced_state_change_is_right_after_a_rollback_and_after_a_re_decode() -> None:
    # A record that failed part-way leaves the cache holding a log the execution no longer has;
    # an abort re-decodes executions from the store (new objects). Both must miss, not mislead.
    rng = random.Random(7)
    planned = build_executions(rng, 1, "branch")
    planned[0].command_id, planned[0].issued_at = "cmd-0", datetime(2026, 11, 24, 9)
    events = build_event_stream(rng, planned)
    outputs = StateChangeEncoder()
    codec = ExecutionCodec()
    execution = next(iter(reference_fold(planned, []).by_execution.values())).execution
    applied = 0
    for index, event in enumerate(events):
        outcome = apply_order_event(execution, event)
        if outcome.entry is None or not outcome.execution.log[-1].rows():
            continue
        plain, spliced = _plain_and_spliced(outputs, outcome.execution, outcome)
        assert spliced == plain
        # Roll back: fold a later event into the execution as it was before this one.
        for other in events[index + 1:]:
            branch = apply_order_event(execution, other)
            if branch.entry is not None:
                plain, spliced = _plain_and_spliced(outputs, branch.execution, branch)
                assert spliced == plain
                break
        # Abort: the same state decoded afresh from its stored bytes.
        execution = codec.decode(codec.encode(outcome.execution))
        applied += 1
    assert applied > 20
