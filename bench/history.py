"""The history section: one execution, one ticket, its fills streamed on one key, and how fast and
how large the processor's work is as that execution's history grows (100 to 100,000 fills).

The fills are produced in stages, one burst per stage (one producer transaction, so the processor
gets it whole and folds while nothing else runs), each once the processor has committed the one
before; a checkpoint is measured over the last fills of its stage (`window`: at most WINDOW).

Time per event is read from the processor's own output: each order event's state change is handed
to the producer right after the event is folded, and librdkafka stamps a record with the wall
clock (ms) when it is produced (CreateTime). One execution's state changes sit in one partition in
fold order, and a transaction's commit marker takes an offset of its own, so

- consecutive state changes with consecutive offsets were folded in one transaction: the time
  between them is fold time;
- an offset gap is a commit (and the consume that followed it): commit time.

`WindowTiming` gives the events/s of the fold alone (commit gaps left out: the first stage is
one burst of 100 events with its commit after it, a longer window spans commits, so only the
fold compares across windows), the events/s including the commit gaps, and the commits' mean
gap, which shows on its own if commits grow with history. The verdict compares fold rates.

100 fills fold in about 10 ms, and the timestamps count whole ms: a checkpoint whose window has
fewer than MIN_WINDOW_EVENTS fills is measured on more executions, each taken through the
stages to that checkpoint in the same way (stage by stage, so every burst meets an idle
processor), and their windows pooled (events over summed time). The execution that goes all the
way is the first; the others stop at the checkpoints that need them.
"""

from __future__ import annotations

import copy
import math
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from confluent_kafka import TIMESTAMP_CREATE_TIME, Message

import testkit.streams as sf
from bench.harness import (
    App,
    CommandResults,
    Procs,
    event_items,
    http_get_status,
    log,
    peak_rss_mb,
    produce_all,
    producer,
    publish_and_create,
    read_committed,
    wait_for,
)
from execution_domain import EventDetails, OrderEvent, OrderEventType, execution_id_for_key, parse_artifact
from execution_domain.proposal import seal_artifact
from execution_domain.tickets import generate_tickets
from local_kafka.broker import free_loopback_port
from testkit.processor import DEFAULT_POLICY, T0, load_sample
from wire import records as translate

CHECKPOINTS = (100, 1_000, 10_000, 100_000)
QUICK_CHECKPOINTS = (100, 1_000, 10_000)
WINDOW = 3_000  # fills per measuring window at most
MIN_WINDOW_EVENTS = 3_000  # pooled over more executions when one window has fewer
WARM_UP_FILLS = 2_000  # another execution's, folded first: the processor's code paths and caches warm
FLAT = 0.80  # the last checkpoint's fold events/s at least this share of the first's


# -- the workload ------------------------------------------------------------------------------------


def one_ticket_plan(prefix: str, quantity: int) -> sf.PlannedExecution:
    """An execution of one SELL ticket of `quantity`, no dependencies (released at creation)."""
    raw = copy.deepcopy(load_sample("rfc_partial_then_fill"))
    raw.update({"proposal_id": prefix, "version_no": 1, "portfolio_id": f"pf_{prefix}"})
    raw["trades_and_funding"] = {"funding_claimed": False, "intents": [{
        "intent_type": "SECURITY_TRADE", "intent_id": "oi_sell_0", "dependencies": [],
        "instrument_id": "SG_EQ_HISTORY_0", "side": "SELL", "quantity": str(quantity),
        "currency": raw["base_currency"], "indicative_price": "12.34"}]}
    sealed = seal_artifact(raw)
    tickets = generate_tickets(parse_artifact(sealed), translate.policy_from_record(DEFAULT_POLICY))
    key = f"key-{prefix}-{uuid.uuid4().hex[:6]}"
    return sf.PlannedExecution(key, execution_id_for_key(key), sealed, tuple(tickets))


def fill_events(plan: sf.PlannedExecution, fills: int) -> list[OrderEvent]:
    """The ticket accepted (event 0), then fills 1..`fills` of 1 each (FILLED when one completes the ticket)."""
    (ticket,) = plan.tickets
    tid, quantity = ticket.ticket_id, int(ticket.order_quantity)

    def report(n: int, kind: OrderEventType, details: EventDetails) -> OrderEvent:
        return OrderEvent(event_id=f"E-{tid}-{n}", execution_id=plan.execution_id, ticket_id=tid, source="oms-sim",
                          event_type=kind, external_order_id=f"OMS-{tid}",
                          occurred_at=T0 + timedelta(minutes=5, milliseconds=n), details=details)

    events = [report(0, OrderEventType.ORDER_ACCEPTED, EventDetails())]
    events += [report(n, OrderEventType.FILLED if n == quantity else OrderEventType.PARTIAL_FILL,
                      EventDetails(fill_id=f"F{n}", last_qty=Decimal(1), last_price=Decimal("12.34") + n % 7))
               for n in range(1, fills + 1)]
    return events


def stages(checkpoints: Sequence[int]) -> list[tuple[int, int]]:
    """(first, last) event of each stage in `fill_events` order; the first stage also holds the accept (0)."""
    bounds = [0, *checkpoints]
    return [(0 if i == 0 else bounds[i] + 1, bounds[i + 1]) for i in range(len(checkpoints))]


def window(checkpoint: int, previous: int) -> tuple[int, int]:
    """The fills (a, b] measured at a checkpoint: the last WINDOW fills of its stage, all within the stage
    (the stage after `previous` starts at fill previous + 1; the first stage at the accept, fill 0)."""
    return max(previous + 1 if previous else 0, checkpoint - WINDOW), checkpoint


def repetitions(checkpoints: Sequence[int]) -> list[int]:
    """How many executions each checkpoint is measured on: enough windows for MIN_WINDOW_EVENTS fills."""
    counts = []
    for checkpoint, previous in zip(checkpoints, [0, *checkpoints], strict=False):
        first, last = window(checkpoint, previous)
        counts.append(math.ceil(MIN_WINDOW_EVENTS / (last - first)))
    return counts


# -- what the topics say -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Produced:
    """One committed record: where it is, when it was produced (ms), its key and its size (key + value)."""

    partition: int
    offset: int
    timestamp_ms: int
    key: bytes
    size: int


def produced(message: Message) -> Produced:
    kind, timestamp = message.timestamp()
    if kind != TIMESTAMP_CREATE_TIME:
        raise ValueError(f"{message.topic()} records carry no producer timestamp (type {kind})")
    key, value = message.key() or b"", message.value() or b""
    return Produced(message.partition() or 0, message.offset() or 0, timestamp, key, len(key) + len(value))


@dataclass(frozen=True, slots=True)
class WindowTiming:
    events: int
    fold_events: int  # events folded in the same transaction as the one before
    fold_ms: int
    total_ms: int
    commits: int  # commit gaps inside the window
    commit_ms: int

    @property
    def fold_eps(self) -> float:
        """Events / fold time (time between state changes of one transaction)."""
        return self.fold_events / (self.fold_ms / 1000) if self.fold_ms > 0 else float("nan")

    @property
    def eps(self) -> float:
        """Events / (fold time + commit gaps)."""
        return self.events / (self.total_ms / 1000) if self.total_ms > 0 else float("nan")

    @property
    def commit_gap_ms(self) -> float:
        return self.commit_ms / self.commits if self.commits else float("nan")

    def __add__(self, other: WindowTiming) -> WindowTiming:
        return WindowTiming(self.events + other.events, self.fold_events + other.fold_events,
                            self.fold_ms + other.fold_ms, self.total_ms + other.total_ms,
                            self.commits + other.commits, self.commit_ms + other.commit_ms)


def window_timing(changes: Sequence[Produced], a: int, b: int) -> WindowTiming:
    """Timing of the fills (a, b]: `changes[i]` is the state change of fill i (0: the accept), in offset order."""
    if not 0 <= a < b < len(changes):
        raise ValueError(f"window ({a}, {b}] outside the {len(changes)} state changes")
    fold_ms = fold_events = commits = commit_ms = 0
    for before, after in zip(changes[a:b], changes[a + 1:b + 1], strict=True):
        if after.partition != before.partition or after.offset <= before.offset:
            raise ValueError(f"state changes out of order at offset {after.offset}")
        elapsed = after.timestamp_ms - before.timestamp_ms
        if after.offset == before.offset + 1:
            fold_ms += elapsed
            fold_events += 1
        else:
            commits += 1
            commit_ms += elapsed
    return WindowTiming(b - a, fold_events, fold_ms, changes[b].timestamp_ms - changes[a].timestamp_ms, commits,
                        commit_ms)


@dataclass(frozen=True, slots=True)
class Sizes:
    records: int
    mean: float
    largest: int


def sizes(records: Sequence[Produced]) -> Sizes:
    if not records:
        return Sizes(0, float("nan"), 0)
    return Sizes(len(records), sum(r.size for r in records) / len(records), max(r.size for r in records))


def changelog_window(changelog: Sequence[Produced], execution_id: str, seqs: range) -> tuple[list[Produced], int]:
    """The changelog records of the transactions that wrote the log entries `seqs` (whole
    transactions: the records around them with consecutive offsets), and the size of the last
    head (x/) among them. `changelog` is one partition's records in offset order."""
    prefix = f"l/{execution_id}/".encode()
    wanted = {f"{seq:010d}".encode() for seq in seqs}
    at = [i for i, r in enumerate(changelog) if r.key.startswith(prefix) and r.key[len(prefix):] in wanted]
    if len(at) != len(seqs):
        raise ValueError(f"found {len(at)} of the {len(seqs)} log entries {seqs} of {execution_id} in the changelog")
    lo, hi = at[0], at[-1]
    while lo > 0 and changelog[lo - 1].offset == changelog[lo].offset - 1:
        lo -= 1
    while hi + 1 < len(changelog) and changelog[hi + 1].offset == changelog[hi].offset + 1:
        hi += 1
    span = list(changelog[lo:hi + 1])
    head = f"x/{execution_id}".encode()
    heads = [r.size for r in span if r.key == head]
    return span, heads[-1] if heads else 0


# -- the section -------------------------------------------------------------------------------------


def run_history(bootstrap: str, app: App, procs: Procs, state_dir: Path, checkpoints: Sequence[int],
                folded: Callable[[], int]) -> dict[str, Any]:
    """Create the executions, fold the warm-up, produce the stages, read the outputs back, measure."""
    reps = repetitions(checkpoints)
    run = uuid.uuid4().hex[:6]
    # Execution j goes through the stages that are measured on more than j executions.
    reach = [max(c for c, n in zip(checkpoints, reps, strict=True) if n > j) for j in range(max(reps))]
    plans = [one_ticket_plan(f"hist{run}x{j}", checkpoints[-1]) for j in range(len(reach))]
    warm = one_ticket_plan(f"hist{run}warm", WARM_UP_FILLS)
    log(f"history: {len(plans)} executions of one ticket, fills on one key in stages to {', '.join(f'{c:,}' for c in reach)}"
        f" (checkpoints {', '.join(f'{c:,}' for c in checkpoints)}; "
        f"windows pooled over {', '.join(map(str, reps))} executions), after {WARM_UP_FILLS:,} warm-up fills")
    items = [event_items(fill_events(plan, fills)) for plan, fills in zip(plans, reach, strict=True)]
    port = free_loopback_port()
    proc = app.spawn(procs, state_dir, "processor-history", port=port)
    results = CommandResults(bootstrap, app.topics.command_results)
    # Each burst in one transaction: the processor (read_committed) gets the whole burst at once, and
    # does not fold while the bench and the broker are still busy producing it.
    p = producer(bootstrap, **{"transactional.id": f"bench-history-{run}"})
    p.init_transactions(30)
    stage_events: dict[int, int] = defaultdict(int)
    stage_seconds: dict[int, float] = defaultdict(float)
    try:
        wait_for(lambda: http_get_status(port, "/readyz") == 200, 120, "processor ready")
        publish_and_create(bootstrap, app, [*plans, warm])
        outcomes = results.wait([plan.command_id or "" for plan in [*plans, warm]], 120)
        if set(outcomes.values()) != {"CREATED"}:
            raise RuntimeError(f"history: creates answered {sorted(set(outcomes.values()))}")
        p.begin_transaction()
        produce_all(p, app.topics.order_events, event_items(fill_events(warm, WARM_UP_FILLS)))
        p.commit_transaction(60)
        done = WARM_UP_FILLS + 1
        _wait_folded(folded, done, 120, "the warm-up folded")
        for (first, last), checkpoint, count in zip(stages(checkpoints), checkpoints, reps, strict=True):
            for j in range(count):
                started = time.monotonic()
                p.begin_transaction()
                produce_all(p, app.topics.order_events, items[j][first:last + 1])
                p.commit_transaction(60)
                done += last + 1 - first
                _wait_folded(folded, done, max(120.0, (last - first) / 300), f"{checkpoint:,} fills folded")
                stage_events[checkpoint] += last + 1 - first
                stage_seconds[checkpoint] += time.monotonic() - started
            log(f"  stages to {checkpoint:,} fills: {stage_events[checkpoint]:,} events in "
                f"{stage_seconds[checkpoint]:.2f}s by committed offsets ({count} execution{'s' * (count > 1)})")
        rss = peak_rss_mb(proc)
    finally:
        results.close()
        procs.stop(proc)

    log("  reading the state changes and the changelog back")
    ids = {plan.execution_id.encode(): plan for plan in plans}
    changes: dict[bytes, list[Produced]] = defaultdict(list)
    for record in read_committed(bootstrap, app.topics.execution_state_changes,
                                 lambda m: produced(m) if m.key() in ids else None):
        changes[record.key].append(record)
    partitions = {rows[0].partition for rows in changes.values()}
    changelog: dict[int, list[Produced]] = defaultdict(list)
    for record in read_committed(bootstrap, app.topics.executions_changelog,
                                 lambda m: produced(m) if m.partition() in partitions else None):
        changelog[record.partition].append(record)
    created: dict[bytes, int] = {}
    for (eid, plan), fills in zip(ids.items(), reach, strict=True):
        # the creation's state changes (EXECUTION_CREATED, the release mark), then one per event
        created[eid] = len(changes[eid]) - fills - 1
        if created[eid] != 1 + len(plan.tickets):
            raise RuntimeError(f"history: {len(changes[eid])} state changes for {fills + 1} events and the creation")

    points = []
    for checkpoint, previous, count in zip(checkpoints, [0, *checkpoints], reps, strict=False):
        first, last = window(checkpoint, previous)
        timing: WindowTiming | None = None
        state_changes: list[Produced] = []
        stored: list[Produced] = []
        head = 0
        for eid in list(ids)[:count]:
            rows = changes[eid][created[eid]:]  # rows[i]: fill i's state change (0: the accept)
            measured = window_timing(rows, first, last)
            timing = measured if timing is None else timing + measured
            state_changes += rows[first + 1:last + 1]
            base = created[eid] + 1  # the accept's log entry
            span, last_head = changelog_window(changelog[rows[0].partition], eid.decode(),
                                               range(base + first + 1, base + last + 1))
            stored += span
            head = head or last_head  # the first execution's
        assert timing is not None
        change_sizes, stored_sizes = sizes(state_changes), sizes(stored)
        points.append({"fills": checkpoint, "window": last - first, "executions": count, "fold_eps": timing.fold_eps,
                       "eps": timing.eps, "commits": timing.commits, "commit_gap_ms": timing.commit_gap_ms,
                       "stage_eps": stage_events[checkpoint] / stage_seconds[checkpoint],
                       "change_bytes": change_sizes.mean, "change_bytes_max": change_sizes.largest,
                       "changelog_bytes": stored_sizes.mean, "changelog_bytes_max": stored_sizes.largest,
                       "changelog_records": stored_sizes.records, "head_bytes": head})
        log(f"  at {checkpoint:,} fills: {timing.fold_eps:,.0f} events/s folding ({timing.eps:,.0f} with "
            f"{timing.commits} commits), state change {change_sizes.mean:.0f} B, "
            f"changelog record {stored_sizes.mean:.0f} B, head {head} B")
    return {"points": points, "ratio": points[-1]["fold_eps"] / points[0]["fold_eps"],
            "ratio_with_commits": points[-1]["eps"] / points[0]["eps"], "rss_mb": rss, "warmup_fills": WARM_UP_FILLS}


def _wait_folded(folded: Callable[[], int], count: int, timeout_s: float, what: str) -> float:
    return wait_for(lambda: folded() >= count, timeout_s, what, 0.02)


def summary_row(point: dict[str, Any]) -> str:
    """One markdown row of the history table."""
    def num(value: float, fmt: str = ",.0f") -> str:
        return "—" if value != value else format(value, fmt)

    return (f"| {point['fills']:,} | {point['window']:,} × {point['executions']} | {num(point['fold_eps'])} | "
            f"{num(point['eps'])} | {num(point['stage_eps'])} | {point['commits']} × {num(point['commit_gap_ms'], '.0f')} ms | "
            f"{num(point['change_bytes'])} / {point['change_bytes_max']:,} | "
            f"{num(point['changelog_bytes'])} / {point['changelog_bytes_max']:,} ({point['changelog_records']:,}) | "
            f"{point['head_bytes']:,} |")


TABLE_HEADER = (
    "| fills | window × executions | events/s, fold | events/s, with commits | events/s, stages by committed offsets | "
    "commits in window × mean gap | state change B (mean / max) | changelog B per record (mean / max (records)) | "
    "head B |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
)
