"""bench.in_process measures the real processor: its tasks, fed in process, produce exactly the
state changes the reference fold expects."""

from __future__ import annotations

import random

from bench import in_process
from testkit import streams as sf


def test_in_process_processor_produces_the_reference_state_changes_byte_for_byte() -> None:
    plans = sf.build_executions(random.Random(11), 6, "inproc")
    events = sf.build_event_stream(random.Random(11), plans)
    changes: list[bytes] = []

    result = in_process.run_stream(plans, events, partitions=3, batch=40, changes=changes)

    reference = sf.reference_fold(plans, events)  # the plans carry the command ids the run stamped
    created = sf.reference_fold(plans, []).by_execution
    expected = sorted(change for eid, e in reference.by_execution.items()
                      for change in e.state_changes[len(created[eid].state_changes):])
    assert result["events"] == len(events)
    assert sorted(changes) == expected

