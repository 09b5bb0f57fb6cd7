"""Scale-out: three processor instances in one group fold thousands of order events (duplicates
and reorderings mixed in); mid-stream a fourth joins, one leaves cleanly (SIGTERM) and one is
SIGKILLed; the state-change topic, the instructions and the state stores end equal to a
reference fold computed in-process from the same inputs."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from testkit.processor import ProcessorHarness, ProcessorProcess
from testkit.streams import (
    CommittedReader,
    EventStream,
    InputProgress,
    build_event_stream,
    build_executions,
    check_changelog_restore,
    check_local_stores,
    check_outputs,
    create_all,
    log_problems,
    parse_restores,
    records_written,
    reference_fold,
    restores_logged,
    wait_until_folded,
)

pytestmark = pytest.mark.integration

SEED = 20260219


@pytest.mark.timeout(600)  # its own deadlines speak first
def test_group_of_three_with_one_added_and_two_removed_mid_stream_ends_equal_to_the_reference_fold(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    harness = ProcessorHarness(kafka_bootstrap, tmp_path, partitions=6)  # so that four members all get work
    rng = random.Random(SEED)
    planned = build_executions(rng, 36, "prop_scale")
    events = build_event_stream(rng, planned)
    assert len(events) >= 3000
    topics = harness.topics
    reader: CommittedReader | None = None
    members: dict[str, ProcessorProcess] = {}
    try:
        members = {name: harness.spawn(name) for name in ("p1", "p2", "p3")}
        create_all(harness, planned)
        reference = reference_fold(planned, events)
        reader = CommittedReader(harness.bootstrap, [topics.execution_state_changes, topics.execution_snapshots,
                                                     topics.trade_tickets, topics.dead_letters])

        # The events flow steadily in the background while the membership changes, each at a point
        # of the stream: a fourth member joins, one leaves cleanly (revoke: it commits what it has
        # done), one dies (its partitions move once its session times out; its open transaction
        # is aborted).
        def add_p4() -> None:
            members["p4"] = harness.spawn("p4")

        def p2_leaves() -> None:
            members["p2"].stop()
            assert members["p2"].process.returncode == 0, f"p2 exited with {members['p2'].process.returncode}"

        def p3_dies() -> None:
            members["p3"].kill()

        progress = InputProgress(harness)
        stream = EventStream(harness, events, per_second=250).start()
        for share, label, change in [(0.15, "p4 joins", add_p4), (0.45, "p2 leaves (SIGTERM)", p2_leaves),
                                     (0.7, "p3 dies (SIGKILL)", p3_dies)]:
            stream.wait_sent(int(share * len(events)))
            sent, folded = stream.sent, progress.folded()
            change()
            print(f"{label} at {sent} events sent, {folded} of them folded and committed")
        stream.join()
        wait_until_folded(reader, harness, reference, timeout_s=150)
        for name in ("p1", "p4"):
            members[name].stop()
            assert members[name].process.returncode == 0, f"{name} exited with {members[name].process.returncode}"
        counts = check_outputs(reader, harness, reference)
    finally:
        if reader is not None:
            reader.close()
        harness.close()

    served = check_local_stores([tmp_path / name for name in ("p1", "p2", "p3", "p4")], harness, reference)
    restored = check_changelog_restore(tmp_path / "verify", harness, reference)
    aborted = records_written(harness.bootstrap, topics.execution_state_changes) - counts["state_changes"]
    assignments = {name: sorted({p for p, *_ in parse_restores(restores_logged(m.log_path))})
                   for name, m in members.items()}
    print(f"{len(events)} events, {len(planned)} executions; outputs {counts}; executions partitions each "
          f"member restored at some point {assignments}; final stores served from {served}; "
          f"{restored} changelog records restored for verification; {aborted} state changes aborted")
    for name, member in members.items():
        print(f"{name} warnings:", log_problems(member.log_path)[:5])
    print(f"took {time.monotonic() - started:.1f}s")
    assert assignments["p4"], "p4 never got a partition"
