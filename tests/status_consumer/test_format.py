"""Readable lines for state changes and final states."""

from __future__ import annotations

from status_consumer.format import describe_change, describe_final
from wire.examples import SAMPLES


def example(schema: str, label: str) -> dict:
    return next(record for name, tag, record in SAMPLES if name == schema and tag == label)


def test_a_change_line_names_the_execution_its_sequence_transitions_and_cause() -> None:
    line = describe_change(example("ExecutionStateChange", "fill-without-execution-transition"))
    assert "exec_20260218_abc #7" in line
    assert "SELL SG_EQ_BANK 120: ACCEPTED -> PARTIAL_FILL" in line
    assert "[order_event exec-rpt-9]" in line


def test_a_creation_line_shows_the_execution_transition_only() -> None:
    line = describe_change(example("ExecutionStateChange", "created"))
    assert "execution - -> CREATED" in line and "PENDING_SUBMIT" not in line


def test_final_state_lists_each_ticket_with_filled_quantity_and_average_price() -> None:
    lines = describe_final(example("ExecutionStateChange", "created")["execution"])
    assert lines[0].startswith("exec_20260218_abc CREATED")
    assert any("SELL SG_EQ_BANK 120" in line and "filled 70 @ 31.441235" in line for line in lines)


def test_final_state_of_an_incomplete_execution_names_the_tickets_still_working() -> None:
    snapshot = dict(example("ExecutionStateChange", "created")["execution"])
    working = [t for t in snapshot["tickets"] if t["status"] not in ("FILLED", "CANCELLED", "REJECTED")]
    snapshot.update(status="REJECTED", is_complete=False, open_ticket_count=len(working))

    lines = describe_final(snapshot)

    assert working and lines[-1].strip().startswith(f"not complete: {len(working)} ticket(s) still working")
    assert all(t["ticket"]["ticket_id"] in lines[-1] for t in working)


def test_final_state_of_a_complete_execution_adds_no_working_line() -> None:
    snapshot = {**example("ExecutionStateChange", "created")["execution"], "is_complete": True}
    assert not any("still working" in line for line in describe_final(snapshot))
