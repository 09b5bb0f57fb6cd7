"""The soak section's instruments: a steady stream of realistic executions, created as it goes, and
the processor's resident memory sampled from /proc while it folds them (issue #15).

`SoakLoad` keeps a pipeline of chunks: a creator thread builds a chunk of executions (the tests'
realistic generator: 2-4 tickets, 18-34 fills each, duplicates, reorderings, stale reports),
publishes their proposals, sends their create commands through the processor and waits for every
CREATED result; the caller's thread then streams that chunk's order events at the set rate while
the next chunk is being created. Bounded in time (it stops at the deadline) and so in count.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.harness import App, CommandResults, event_items, log, producer, publish_and_create
from execution_domain import OrderEvent
from testkit import streams as sf

SPARKS = "▁▂▃▄▅▆▇█"
WITHIN = 0.20  # the end's RSS within this share of the RSS after the first minute
FIRST_MINUTE_S = 60.0


@dataclass(frozen=True, slots=True)
class Sample:
    at_s: float  # since the load started
    rss_mb: float
    produced: int  # order events produced so far
    folded: int  # order events the processor committed so far


def sparkline(values: Sequence[float]) -> str:
    """One character per value, from the lowest (▁) to the highest (█) of them."""
    finite = [v for v in values if v == v]
    if not finite:
        return ""
    low, high = min(finite), max(finite)
    span = high - low
    return "".join(" " if v != v else SPARKS[0 if span == 0 else min(len(SPARKS) - 1, int((v - low) / span * len(SPARKS)))]
                   for v in values)


def rss_summary(samples: Sequence[Sample], first_minute_s: float = FIRST_MINUTE_S) -> dict[str, float]:
    """RSS after the first minute (the first sample at or past it), at the end (the last sample), their ratio."""
    after = [s for s in samples if s.at_s >= first_minute_s and s.rss_mb == s.rss_mb]
    if not after:
        raise ValueError(f"no RSS sample after {first_minute_s:.0f} s of load")
    first, last = after[0], after[-1]
    return {"rss_1min_mb": first.rss_mb, "rss_1min_at_s": first.at_s, "rss_end_mb": last.rss_mb,
            "rss_end_at_s": last.at_s, "ratio": last.rss_mb / first.rss_mb,
            "rss_peak_mb": max(s.rss_mb for s in samples if s.rss_mb == s.rss_mb)}


def within(ratio: float) -> bool:
    return abs(ratio - 1) <= WITHIN


def per_minute(samples: Sequence[Sample]) -> list[Sample]:
    """The first sample at or past each whole minute, and the last one."""
    picked: list[Sample] = []
    minute = 0.0
    for sample in samples:
        if sample.at_s >= minute:
            picked.append(sample)
            minute = (int(sample.at_s // 60) + 1) * 60.0
    if samples and (not picked or picked[-1] is not samples[-1]):
        picked.append(samples[-1])
    return picked


@dataclass
class SoakLoad:
    bootstrap: str
    app: App
    rate: float  # order events/s offered
    seconds: float
    chunk: int  # executions created at a time
    seed: int
    prefix: str
    rss: Callable[[], float]  # the processor's RSS now, MB
    folded: Callable[[], int]  # order events the processor has committed
    sample_every_s: float = 5.0
    samples: list[Sample] = field(default_factory=list)
    produced: int = 0
    executions: int = 0
    create_failures: dict[str, int] = field(default_factory=dict)
    stalls_s: float = 0.0  # time the stream waited for a chunk to be created

    def run(self) -> dict[str, Any]:
        ready: queue.Queue[list[OrderEvent]] = queue.Queue(maxsize=1)
        stop = threading.Event()
        failure: list[BaseException] = []
        results = CommandResults(self.bootstrap, self.app.topics.command_results)
        creator = threading.Thread(target=self._create, args=(ready, stop, failure, results), name="soak-creator",
                                   daemon=True)
        creator.start()
        p = producer(self.bootstrap, **{"linger.ms": 5})
        try:
            first = self._next(ready, failure, time.monotonic() + 120)
            started = time.monotonic()
            deadline = started + self.seconds
            next_sample = started
            pending: list[OrderEvent] = first
            while time.monotonic() < deadline:
                if not pending:
                    waited = time.monotonic()
                    pending = self._next(ready, failure, deadline)
                    self.stalls_s += time.monotonic() - waited
                    continue
                piece, pending = pending[:25], pending[25:]
                for key, value in event_items(piece):
                    while True:
                        try:
                            p.produce(self.app.topics.order_events, value, key)
                            break
                        except BufferError:
                            p.poll(0.05)
                self.produced += len(piece)
                p.poll(0)
                now = time.monotonic()
                if now >= next_sample:
                    self.samples.append(Sample(now - started, self.rss(), self.produced, self.folded()))
                    next_sample += self.sample_every_s
                ahead = started + self.produced / self.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            p.flush(60)
            ended = time.monotonic()
            self.samples.append(Sample(ended - started, self.rss(), self.produced, self.folded()))
        finally:
            stop.set()
            creator.join(150)
            results.close()
        return {"seconds": ended - started, "produced": self.produced, "offered_eps": self.produced / (ended - started),
                "executions": self.executions, "create_failures": self.create_failures, "stalls_s": self.stalls_s}

    def _next(self, ready: queue.Queue[list[OrderEvent]], failure: list[BaseException], deadline: float) -> list[OrderEvent]:
        while time.monotonic() < deadline:
            if failure:
                raise RuntimeError(f"creating executions failed: {failure[0]!r}") from failure[0]
            try:
                return ready.get(timeout=0.2)
            except queue.Empty:
                continue
        return []

    def _create(self, ready: queue.Queue[list[OrderEvent]], stop: threading.Event, failure: list[BaseException],
                results: CommandResults) -> None:
        rng = random.Random(self.seed)
        index = 0
        try:
            while not stop.is_set():
                plans = sf.build_executions(rng, self.chunk, f"{self.prefix}c{index}")
                events = sf.build_event_stream(rng, plans)
                publish_and_create(self.bootstrap, self.app, plans)
                outcomes = results.wait([plan.command_id or "" for plan in plans], 120)
                created = {plan.execution_id for plan in plans if outcomes[plan.command_id or ""] == "CREATED"}
                for outcome in outcomes.values():
                    if outcome != "CREATED":
                        self.create_failures[outcome] = self.create_failures.get(outcome, 0) + 1
                self.executions += len(created)
                events = [e for e in events if e.execution_id in created]
                index += 1
                while not stop.is_set():
                    try:
                        ready.put(events, timeout=0.2)
                        break
                    except queue.Full:
                        continue
        except BaseException as error:  # reported by the streaming thread
            failure.append(error)
            log(f"soak: creating executions failed: {error!r}")


def soak_table(samples: Sequence[Sample]) -> str:
    rows = ["| at | RSS MB | events produced | events folded |", "| --- | --- | --- | --- |"]
    rows += [f"| {s.at_s:,.0f} s | {s.rss_mb:.0f} | {s.produced:,} | {s.folded:,} |" for s in per_minute(samples)]
    return "\n".join(rows)
