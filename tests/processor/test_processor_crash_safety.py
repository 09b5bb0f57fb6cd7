"""Crash safety: a processor SIGKILLed at several points while folding thousands of order events
(duplicates and reorderings mixed in), restarted each time (once with an empty state
directory), ends with the state-change topic, the instructions and the state stores equal to
a reference fold computed in-process from the same inputs."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from testkit.processor import ProcessorHarness
from testkit.streams import (
    CommittedReader,
    InputProgress,
    build_event_stream,
    build_executions,
    check_changelog_restore,
    check_local_stores,
    check_outputs,
    chunks,
    create_all,
    log_problems,
    parse_restores,
    records_written,
    reference_fold,
    restores_logged,
    wait_until_folded,
)

pytestmark = pytest.mark.integration

SEED = 20260218


def test_sigkilled_processor_restarted_ends_equal_to_the_reference_fold_without_loss_or_duplicates(
    harness: ProcessorHarness, tmp_path: Path
) -> None:
    started = time.monotonic()
    rng = random.Random(SEED)
    planned = build_executions(rng, 60, "prop_crash")
    events = build_event_stream(rng, planned)
    assert len(events) >= 3000

    state_dir, empty_dir = tmp_path / "p1-state", tmp_path / "p1-empty-state"
    # Static membership, as in production: each restart (same instance id) takes the partitions back at once.
    # Small batches and short transactions: a kill lands mid-backlog, not after one commit that
    # took the whole backlog at once (500 records and 50 ms could take most of a chunk).
    small = ("--batch-size", "50", "--commit-interval-ms", "10")
    processor = harness.spawn("p1", state_dir=state_dir, static_membership=True, extra_args=small)
    create_all(harness, planned)
    reference = reference_fold(planned, events)

    topics = harness.topics
    reader = CommittedReader(harness.bootstrap, [topics.execution_state_changes, topics.execution_snapshots,
                                                 topics.trade_tickets, topics.dead_letters])
    # The stream keeps flowing: each chunk is produced right after a kill, so the restarted
    # processor (which gets its partitions back once the killed member's session has timed out)
    # faces a backlog; the next kill comes once a varying share of that backlog is committed (the
    # group's committed input offsets), plus a moment into the next batch, i.e. mid-stream with a
    # transaction open and its outputs partly written. The restarts use the surviving
    # state directory, except one with an EMPTY directory (rebuilt from the changelog); the one
    # after that gets the surviving, now stale, store back (it replays the tail it missed).
    pieces = chunks(events, 6)
    kill_at = [0.3, 0.2, 0.5, 0.25]
    restart_dirs = [state_dir, empty_dir, state_dir, state_dir]
    progress = InputProgress(harness)
    harness.send_events(pieces[0] + pieces[1])
    sent, kills, backlogs = len(pieces[0]) + len(pieces[1]), 0, []
    try:
        for index, piece in enumerate(pieces[2:]):
            folded = progress.folded()
            progress.wait_for(folded + int(kill_at[index] * (sent - folded)), 90, f"progress before kill {kills + 1}")
            time.sleep(rng.uniform(0.0, 0.03))  # into the next batch, whose transaction is open
            processor.kill()
            kills += 1
            backlogs.append(sent - progress.folded())  # exact: the killed process commits nothing more
            print(f"kill {kills}: SIGKILL with {sent - backlogs[-1]} of the {sent} events sent so far folded and "
                  f"committed; restart with {'an EMPTY' if restart_dirs[index] == empty_dir else 'the surviving'} "
                  f"state dir")
            harness.send_events(piece)
            sent += len(piece)
            processor = harness.spawn("p1", state_dir=restart_dirs[index], static_membership=True,
                                      extra_args=small)
        assert sent == len(events)

        wait_until_folded(reader, harness, reference, timeout_s=120)
        processor.stop()  # SIGTERM: a clean stop writes the last commit to the store
        assert processor.process.returncode == 0, f"processor exited with {processor.process.returncode}"
        counts = check_outputs(reader, harness, reference)
    finally:
        reader.close()

    served = check_local_stores([state_dir, empty_dir], harness, reference)
    restored = check_changelog_restore(tmp_path / "verify", harness, reference)
    restores = parse_restores(restores_logged(processor.log_path))  # every incarnation logs to one file
    aborted = records_written(harness.bootstrap, topics.execution_state_changes) - counts["state_changes"]
    print(f"{len(events)} events, {len(planned)} executions, {kills} SIGKILLs (events still unfolded at each: "
          f"{backlogs}); outputs {counts}; {aborted} state changes written by killed incarnations were aborted; "
          f"executions stores restored by the incarnations (partition, records, from, to): {restores}; "
          f"final stores served from {served}; {restored} changelog records restored for verification")
    print("p1 warnings:", log_problems(processor.log_path)[:10])
    print(f"took {time.monotonic() - started:.1f}s")
    assert kills >= 3
    assert sum(backlog > 0 for backlog in backlogs) >= 2, f"kills that hit an idle processor: {backlogs}"
    # The restart with an empty state directory rebuilt its stores from the whole changelog.
    assert any(records > 0 and start == 0 for _, records, start, _ in restores), restores
