"""The read model behind the GETs: the latest snapshot of every execution, from the processor's
execution-state-changes topic.

- A consumer assigned every partition from the beginning, `read_committed` (the processor
  writes state changes in transactions; aborted ones are never seen), in a background thread.
  It decodes each batch, keeps the newest change per execution, pre-renders the JSON bodies
  and hands them to the asyncio loop, which alone owns the index: no locks.
- A change whose `sequence` is not newer than the one held is dropped (a reprocessed or
  duplicated change never moves an execution backwards).
- Ready once it has consumed up to the end offsets captured at start-up; until then the
  endpoints that read it answer 503.
- `sync()` gives read-your-writes on a miss: it captures the current end offsets and waits
  (bounded) until the consumer has passed them, so an execution whose create returned 201 is
  found even if its state change was committed a moment before the GET.

Each entry also keeps its execution's origin: the create's correlation id and W3C trace context
(the `correlation_id` field and the `traceparent` / `tracestate` headers of the change with
sequence 1; failing that, the correlation id of a change an order event caused, which the
processor sets to the create's). The webhook puts them on the order events it publishes, so a
create's correlation id and trace reach its fills.

The list order is newest first: `created_at` descending, then `execution_id` descending. The key
never changes for an execution, so keyset paging with a cursor holding the last key returns
every matching execution exactly once while new executions arrive.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import queue
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, TopicPartition

from gateway.cursor import Cursor
from gateway.kafka_io import PollThread, assign_only_consumer_config, end_offsets, wait_for_partitions
from gateway.metrics import GatewayMetrics
from gateway.views import execution_view, summary_view
from kafka_client.settings import KafkaSettings
from observability.tracing import TRACEPARENT_HEADER, TRACESTATE_HEADER
from wire import formats
from wire.errors import DecodeError
from wire.views import ExecutionView

log = logging.getLogger(__name__)

_OFFSET_BEGINNING = -2


def micros(value: datetime) -> int:
    return int(value.timestamp()) * 1_000_000 + value.microsecond


TraceHeaders = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class Origin:
    """What the execution's create carried: its correlation id and trace context headers."""

    correlation_id: str | None = None
    trace_headers: TraceHeaders = ()
    from_create: bool = False  # taken from the create's own state change (else inferred)


NO_ORIGIN = Origin()


@dataclass(frozen=True, slots=True)
class ExecutionEntry:
    """What the read model holds per execution: its newest snapshot, rendered."""

    execution_id: str
    sequence: int
    created_us: int
    proposal_id: str
    status: str
    ticket_ids: frozenset[str]
    body: bytes  # the Execution JSON body
    summary: dict[str, Any]  # the ExecutionSummary
    origin: Origin = NO_ORIGIN

    @property
    def key(self) -> tuple[int, str]:
        return (self.created_us, self.execution_id)


def origin_of(change: dict[str, Any], headers: Any = None) -> Origin | None:
    """The origin a state change tells, if it tells one."""
    if change["sequence"] == 1:
        trace = tuple((name, bytes(value)) for name, value in headers or ()
                      if name in (TRACEPARENT_HEADER, TRACESTATE_HEADER) and value is not None)
        return Origin(change.get("correlation_id"), trace, from_create=True)
    if (change.get("cause") or {}).get("kind") == "ORDER_EVENT" and change.get("correlation_id"):
        return Origin(change["correlation_id"])
    return None


def entry_from_change(change: dict[str, Any], origin: Origin | None = None) -> ExecutionEntry:
    """Render a decoded ExecutionStateChange."""
    snapshot = change["execution"]
    return ExecutionEntry(
        execution_id=change["execution_id"],
        sequence=change["sequence"],
        created_us=micros(snapshot["created_at"]),
        proposal_id=snapshot["proposal_id"],
        status=snapshot["status"],
        ticket_ids=frozenset(t["ticket"]["ticket_id"] for t in snapshot["tickets"]),
        body=orjson.dumps(execution_view(snapshot)),
        summary=summary_view(snapshot),
        origin=origin or origin_of(change) or NO_ORIGIN,
    )


class ExecutionIndex:
    """The latest entry per execution, ordered by (created_at, execution_id); loop-thread only."""

    def __init__(self) -> None:
        self._entries: dict[str, ExecutionEntry] = {}
        self._keys: list[tuple[int, str]] = []  # ascending; pages walk it from the end
        self._by_proposal: dict[str, list[tuple[int, str]]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, execution_id: str) -> ExecutionEntry | None:
        return self._entries.get(execution_id)

    def apply(self, entry: ExecutionEntry) -> bool:
        """Keep `entry` if it is newer than what is held; False if it was dropped."""
        held = self._entries.get(entry.execution_id)
        if held is not None:
            if entry.sequence <= held.sequence:
                return False
            if held.origin.from_create or (held.origin != NO_ORIGIN and entry.origin == NO_ORIGIN):
                entry = replace(entry, origin=held.origin)  # the create's origin outlives later changes
            self._entries[entry.execution_id] = entry
            return True
        self._entries[entry.execution_id] = entry
        bisect.insort(self._keys, entry.key)
        bisect.insort(self._by_proposal.setdefault(entry.proposal_id, []), entry.key)
        return True

    def page(
        self,
        *,
        limit: int,
        after: Cursor | None = None,
        proposal_id: str | None = None,
        status: str | None = None,
        from_us: int | None = None,
        to_us: int | None = None,
    ) -> tuple[list[ExecutionEntry], Cursor | None]:
        """Up to `limit` matching entries, newest first, strictly after `after`; and the cursor of
        the next page (None when nothing matches beyond this page)."""
        keys = self._keys if proposal_id is None else self._by_proposal.get(proposal_id, [])
        high = len(keys)
        if to_us is not None:  # created_at < to
            high = min(high, bisect.bisect_left(keys, (to_us, "")))
        if after is not None:  # strictly before the cursor's key in list order
            high = min(high, bisect.bisect_left(keys, (after.created_us, after.execution_id)))
        found: list[ExecutionEntry] = []
        for index in range(high - 1, -1, -1):
            created_us, execution_id = keys[index]
            if from_us is not None and created_us < from_us:
                break
            entry = self._entries[execution_id]
            if status is not None and entry.status != status:
                continue
            found.append(entry)
            if len(found) > limit:
                break
        if len(found) > limit:
            last = found[limit - 1]
            return found[:limit], Cursor(last.created_us, last.execution_id)
        return found, None

    def __iter__(self) -> Iterator[ExecutionEntry]:
        return iter(self._entries.values())


class ReadModel:
    def __init__(self, kafka: KafkaSettings, topic: str, client_id: str, metrics: GatewayMetrics) -> None:
        self._config = assign_only_consumer_config(kafka, client_id)
        self._topic = topic
        self._codec = formats.value_codec("execution-state-changes", topic)  # either framing (wire.formats)
        self._metrics = metrics
        self.index = ExecutionIndex()
        self.ready = False  # set on the loop, after the start-up backlog is applied
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: PollThread | None = None
        self._sync_requests: queue.SimpleQueue[asyncio.Future[bool]] = queue.SimpleQueue()
        self._views: dict[str, ExecutionView] = {}  # consumer thread only

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = PollThread("gateway-read-model", self._run)
        self._thread.start()

    @property
    def healthy(self) -> bool:
        return self._thread is not None and self._thread.alive

    def get(self, execution_id: str) -> ExecutionEntry | None:
        return self.index.get(execution_id)

    async def sync(self, timeout_s: float) -> bool:
        """Wait until everything committed to the topic before this call is applied (bounded)."""
        if not self.ready or self._loop is None or not self.healthy:
            return False
        reached: asyncio.Future[bool] = self._loop.create_future()
        self._sync_requests.put(reached)
        try:
            return await asyncio.wait_for(reached, timeout_s)
        except TimeoutError:
            return False

    async def lookup(self, execution_id: str, sync_timeout_s: float) -> ExecutionEntry | None:
        """The entry, syncing once on a miss (read-your-writes)."""
        entry = self.index.get(execution_id)
        if entry is None and await self.sync(sync_timeout_s):
            entry = self.index.get(execution_id)
        return entry

    # -- loop side -----------------------------------------------------------------------

    def _deliver(self, entries: list[ExecutionEntry], caught_up: bool, synced: list[asyncio.Future[bool]]) -> None:
        applied = dropped = 0
        for entry in entries:
            if self.index.apply(entry):
                applied += 1
            else:
                dropped += 1
        if applied:
            self._metrics.read_model_changes.labels("applied").inc(applied)
        if dropped:
            self._metrics.read_model_changes.labels("dropped").inc(dropped)
        self._metrics.read_model_executions.set(len(self.index))
        if caught_up and not self.ready:
            self.ready = True
            self._metrics.read_model_ready.set(1)
            log.info("read model caught up: %d executions", len(self.index))
        for future in synced:
            if not future.done():
                future.set_result(True)

    # -- consumer thread -----------------------------------------------------------------

    def _run(self, stopped: Any) -> None:
        consumer = Consumer(self._config)
        loop = self._loop
        assert loop is not None
        try:
            partitions = wait_for_partitions(consumer, self._topic, stopped)
            if partitions is None:
                return
            startup_ends = end_offsets(consumer, partitions)
            consumer.assign([TopicPartition(self._topic, tp.partition, _OFFSET_BEGINNING) for tp in partitions])
            lows = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10, cached=False)[0] for tp in partitions}
            log.info("read model loading %s up to offsets %s", self._topic, startup_ends)
            caught_up = False
            waiting: list[tuple[dict[int, int], asyncio.Future[bool]]] = []

            def progress(entries: list[ExecutionEntry]) -> None:
                nonlocal caught_up, waiting
                positions = {
                    tp.partition: (tp.offset if tp.offset >= 0 else lows[tp.partition])
                    for tp in consumer.position(partitions)
                }
                newly_caught_up = not caught_up and _reached(positions, startup_ends)
                caught_up = caught_up or newly_caught_up
                synced = [future for targets, future in waiting if _reached(positions, targets)]
                # Drop the answered and the given-up (timed out: cancelled) waits.
                waiting = [(t, f) for t, f in waiting if f not in synced and not f.cancelled()]
                if entries or newly_caught_up or synced:
                    # Queued after every earlier batch: a sync resolves only once what it waited for is applied.
                    loop.call_soon_threadsafe(self._deliver, entries, caught_up, synced)

            while not stopped():
                requests = _drain(self._sync_requests)
                if requests:
                    targets = end_offsets(consumer, partitions)
                    waiting.extend((targets, future) for future in requests)
                    progress([])  # already there: answer without waiting for the next fetch
                progress(self._decode(consumer.consume(1000, timeout=0.02)))
        finally:
            consumer.close()

    def _decode(self, messages: list[Any]) -> list[ExecutionEntry]:
        newest: dict[str, dict[str, Any]] = {}
        origins: dict[str, Origin] = {}
        views = self._views
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("state-change consumer error: %s", error)
                continue
            try:
                change = self._codec.decode(message.value(), topic=message.topic(),
                                              partition=message.partition(), offset=message.offset())
            except DecodeError as undecodable:
                log.error("skipping undecodable state change: %s", undecodable,
                          extra={"topic": message.topic(), "partition": message.partition(),
                                 "offset": message.offset()})
                continue
            execution_id = change["execution_id"]
            # A change carries only what changed: fold it into the execution's view (wire.views).
            view = views.get(execution_id)
            if view is None:
                view = views[execution_id] = ExecutionView(execution_id)
            if view.apply_change(change):
                newest[execution_id] = {**change, "execution": view.snapshot()}
            origin = origin_of(change, message.headers())
            if origin is not None and (origin.from_create or execution_id not in origins):
                origins[execution_id] = origin
        entries = []
        for change in newest.values():
            try:
                entries.append(entry_from_change(change, origins.get(change["execution_id"])))
            except (KeyError, ValueError, TypeError) as unusable:  # never stop the feed on one record
                log.error("skipping unusable state change: %s", unusable, extra={"execution_id": change["execution_id"]})
        return entries

    def close(self) -> None:
        if self._thread is not None:
            self._thread.stop()


def _reached(positions: dict[int, int], targets: dict[int, int]) -> bool:
    return all(positions.get(partition, 0) >= target for partition, target in targets.items())


def _drain(requests: queue.SimpleQueue[Any]) -> list[Any]:
    drained = []
    while True:
        try:
            drained.append(requests.get_nowait())
        except queue.Empty:
            return drained
