"""The read model behind the GETs: every execution's summary, tickets and lifecycle log, kept in
an embedded RocksDB store (`gateway.read_store`) under the state directory and fed from two
topics of the processor:

- `execution-snapshots` (the table: the latest SUMMARY of each execution, compacted), and
- `execution-state-changes` (the stream: each change carries the header, the tickets it touched
  and its own lifecycle rows).

One consumer, assigned every partition of both (no group), `read_committed` (the processor
writes both in transactions; aborted records are never seen), in a background thread. It decodes
a batch, folds it into the store and writes the batch together with the offsets it reached in
one RocksDB WriteBatch. A restart on the same state directory resumes from those offsets; a
missing, unreadable or foreign store (another cluster, other topic names, a recreated topic, or
offsets past a topic's end) is rebuilt from the beginning of both topics.

- Ready once it has consumed up to the end offsets captured at start-up (resumed or rebuilt);
  until then the endpoints that read it answer 503.
- `sync()` gives read-your-writes: it captures the current end offsets of the state-change topic
  and waits (bounded) until the consumer has passed them and written what it read, so an
  execution whose create returned 201 (its state change is committed with the result) is found.
- Memory does not grow with the number of executions or the length of their logs: RocksDB keeps
  them on disk with a bounded block cache and memtables; a batch holds at most one poll's records.

The store also keeps each execution's origin: the create's correlation id and W3C trace context
(the `correlation_id` field and the `traceparent` / `tracestate` headers of the change with
sequence 1; failing that, the correlation id of a change an order event caused, which the
processor sets to the create's). The webhook puts them on the order events it publishes.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import queue
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicCollection, TopicPartition

from gateway.cursor import Cursor
from gateway.kafka_io import (
    PartitionOffsets,
    PollThread,
    assign_only_consumer_config,
    retrying,
    wait_for_partitions,
)
from gateway.metrics import GatewayMetrics
from gateway.read_store import FORMAT, ExecutionHead, ReadStore, StoreError, UnusableRecord, origin_of
from kafka_client.records import decode_value
from kafka_client.settings import KafkaSettings
from observability.tracing import TRACEPARENT_HEADER, TRACESTATE_HEADER
from wire import formats
from wire.errors import DecodeError

log = logging.getLogger(__name__)

_OFFSET_BEGINNING = -2
_TRACE_NAMES = (TRACEPARENT_HEADER, TRACESTATE_HEADER)
_BATCH = 2000  # records per poll, folded and written as one RocksDB batch


class StateDirError(RuntimeError):
    """The state directory cannot be used (in use by another gateway, not writable)."""


class StateDir:
    """The gateway's state directory, locked for this process. Without a path: a temporary
    directory removed at close (the read model is then rebuilt at every start)."""

    def __init__(self, path: Path | None) -> None:
        self.temporary = path is None
        self.path = Path(tempfile.mkdtemp(prefix="gateway-state-")) if path is None else path
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock = open(self.path / "gateway.lock", "a+")  # noqa: SIM115 - held until close
        except OSError as error:
            raise StateDirError(f"cannot use {self.path}: {error.strerror or error}") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise StateDirError(f"{self.path} is in use by another gateway process; give each instance its "
                                f"own state directory") from None
        self._lock.seek(0)
        self._lock.truncate()
        self._lock.write(f"{os.getpid()}\n")
        self._lock.flush()

    def close(self) -> None:
        self._lock.close()  # releases the lock
        if self.temporary:
            shutil.rmtree(self.path, ignore_errors=True)


@dataclass(frozen=True, slots=True)
class Progress:
    """What one poll did, for the loop thread."""

    changes: tuple[int, int] = (0, 0)  # state changes (applied, not newer)
    snapshots: tuple[int, int] = (0, 0)  # table rows (applied, not newer)
    executions: frozenset[str] = frozenset()  # the executions whose records this batch wrote


class StoreQueries:
    """The read model's queries, each answered by its `ReadStore` on the loop thread; shared by
    `ReadModel` (the store filled from the topics) and the tests' `FakeReadModel` (filled by hand)."""

    store: ReadStore

    def get(self, execution_id: str) -> ExecutionHead | None:
        return self.store.head(execution_id)

    def has_ticket(self, execution_id: str, ticket_id: str) -> bool:
        return self.store.has_ticket(execution_id, ticket_id)

    def execution(self, execution_id: str, recent: int) -> tuple[ExecutionHead, list[bytes], list[bytes]] | None:
        return self.store.execution(execution_id, recent)

    def events(self, execution_id: str, after_seq: int, limit: int) -> tuple[list[bytes], bool] | None:
        return self.store.events(execution_id, after_seq, limit)

    def causes(self, execution_id: str, lowest: int, highest: int) -> list[tuple[int, dict[str, Any]]]:
        return self.store.causes(execution_id, lowest, highest)

    def page(self, **query: Any) -> tuple[list[dict[str, Any]], Cursor | None]:
        return self.store.page(**query)


class ReadModel(StoreQueries):
    def __init__(self, kafka: KafkaSettings, state_changes_topic: str, snapshots_topic: str, client_id: str,
                 metrics: GatewayMetrics, state_dir: Path | None = None) -> None:
        self._kafka = kafka
        # A rebuild reads faster than it folds: bound what librdkafka fetches ahead. With its defaults
        # building 40,000 executions took the process to 466 MB RSS, with these to 256 MB (and about
        # 15 % longer); a user's KAFKA_CLIENT_* setting still wins.
        self._config = assign_only_consumer_config(kafka, client_id, **{
            "queued.max.messages.kbytes": 4096, "fetch.max.bytes": 2 << 20, "max.partition.fetch.bytes": 512 << 10})
        self._changes_topic = state_changes_topic
        self._snapshots_topic = snapshots_topic
        self._change_codec = formats.value_codec("execution-state-changes", state_changes_topic)
        self._snapshot_codec = formats.value_codec("execution-snapshots", snapshots_topic)
        self._metrics = metrics
        self._state = StateDir(state_dir)
        try:
            self.store = ReadStore(self._state.path / "read-model", cache_bytes=16 << 20, write_buffer_bytes=8 << 20)
        except StoreError as error:
            self._state.close()
            raise StateDirError(str(error)) from None
        self.ready = False  # set on the loop, after the start-up backlog is written
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: PollThread | None = None
        # Read-your-writes: (offsets to reach, future) handed to the consumer thread when not reached yet.
        self._sync_requests: queue.SimpleQueue[tuple[dict[tuple[str, int], int], asyncio.Future[bool]]] = (
            queue.SimpleQueue())
        self._offsets: PartitionOffsets | None = None  # set by the consumer thread once the topics exist
        self._changes_partitions: list[TopicPartition] = []
        self._written: dict[tuple[str, int], int] = {}  # the offsets in the store (replaced, never mutated)
        self.loaded_in_s: float | None = None  # start to ready
        self._listeners: list[Callable[[frozenset[str]], None]] = []

    def subscribe(self, listener: Callable[[frozenset[str]], None]) -> None:
        """Call `listener` on the loop with the ids of the executions each written batch changed
        (the console's live updates: gateway.console.live)."""
        self._listeners.append(listener)

    @property
    def state_path(self) -> Path:
        return self._state.path

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._started = time.monotonic()
        self._thread = PollThread("gateway-read-model", self._run)
        self._thread.start()

    @property
    def healthy(self) -> bool:
        return self._thread is not None and self._thread.alive

    # -- queries (loop thread): StoreQueries ----------------------------------------------------

    async def sync(self, timeout_s: float) -> bool:
        """Wait until everything committed to the state-change topic before this call is in the
        store (bounded): the topic's last stable offsets, asked on the admin client's connection,
        compared with the offsets written with the store; if the store is behind, the consumer
        thread answers once a batch reaching them is written."""
        offsets, loop = self._offsets, self._loop
        if not self.ready or offsets is None or loop is None or not self.healthy:
            return False
        try:
            async with asyncio.timeout(timeout_s):
                asked = offsets.ends_async(self._changes_partitions, timeout_s)
                targets = {key: (await asyncio.wrap_future(future)).offset for key, future in asked.items()}
                if _reached(self._written, targets):
                    return True
                reached: asyncio.Future[bool] = loop.create_future()
                self._sync_requests.put((targets, reached))
                return await reached
        except (TimeoutError, KafkaException):
            return False

    async def lookup(self, execution_id: str, sync_timeout_s: float) -> ExecutionHead | None:
        """The execution's head, syncing once on a miss (read-your-writes)."""
        head = self.store.head(execution_id)
        if head is None and await self.sync(sync_timeout_s):
            head = self.store.head(execution_id)
        return head

    # -- loop side ------------------------------------------------------------------------------

    def _deliver(self, progress: Progress, caught_up: bool, synced: list[asyncio.Future[bool]]) -> None:
        metrics = self._metrics
        for result, count in zip(("applied", "dropped"), progress.changes, strict=True):
            if count:
                metrics.read_model_changes.labels(result).inc(count)
        for result, count in zip(("applied", "dropped"), progress.snapshots, strict=True):
            if count:
                metrics.read_model_snapshots.labels(result).inc(count)
        metrics.read_model_executions.set(self.store.count())
        if caught_up and not self.ready:
            self.ready = True
            self.loaded_in_s = time.monotonic() - self._started
            metrics.read_model_ready.set(1)
            log.info("read model caught up in %.1fs: %d executions (store %s)", self.loaded_in_s,
                     self.store.count(), self.store.path)
        for future in synced:
            if not future.done():
                future.set_result(True)
        if progress.executions:
            for listener in self._listeners:
                try:
                    listener(progress.executions)
                except Exception:  # a listener never stops the feed
                    log.exception("read-model listener failed")

    # -- consumer thread ------------------------------------------------------------------------

    def _identity(self, offsets: PartitionOffsets) -> dict[str, Any]:
        """What the store must have been built from to be resumed: this layout, the cluster and the
        topics (names, and ids where the broker tells them: a recreated topic has a new id)."""
        admin = offsets.admin
        topics = [self._changes_topic, self._snapshots_topic]
        ids: dict[str, str | None] = dict.fromkeys(topics)
        cluster_id = None
        try:
            cluster_id = admin.describe_cluster(request_timeout=10).result().cluster_id
            for name, future in admin.describe_topics(TopicCollection(topics), request_timeout=10).items():
                ids[name] = str(future.result().topic_id)
        except KafkaException as error:  # an older broker: names only
            log.info("cluster or topic ids not available (%s); the store is matched by topic names", error)
        return {"format": FORMAT, "cluster_id": cluster_id, "topics": ids}

    def _start_offsets(self, offsets: PartitionOffsets, ends: dict[tuple[str, int], int],
                       firsts: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
        """Where to start reading each partition: the store's offsets when it can be resumed, else
        nothing (the store is rebuilt from the beginning of both topics)."""
        identity = self._identity(offsets)
        held = self.store.identity()
        stored = self.store.offsets()
        reason = None
        if held is None:
            reason = "new store"
        elif held != identity:
            reason = f"the store was built from {held}, the topics are {identity}"
        else:
            foreign = [f"{topic}[{p}]@{offset}" for (topic, p), offset in stored.items()
                       if (topic, p) not in ends or offset > ends[(topic, p)]]
            if foreign:
                reason = f"offsets past the topics' end or of partitions that no longer exist: {', '.join(foreign)}"
        if reason is not None:
            self.store.reset(identity, reason)
            self._metrics.read_model_rebuilds.labels("new" if held is None else "foreign").inc()
            log.info("read model: building the store %s from the beginning of the topics (%s)", self.store.path,
                     reason)
            return {}
        for key, offset in stored.items():
            if offset < firsts.get(key, 0):
                log.warning("read model: %s[%d] records %d to %d were deleted (retention) before this gateway "
                            "read them", key[0], key[1], offset, firsts[key] - 1)
        log.info("read model: resuming the store %s (%d executions) from offsets %s", self.store.path,
                 self.store.count(), stored)
        return stored

    def _run(self, stopped: Callable[[], bool]) -> None:
        consumer = Consumer(self._config)
        loop = self._loop
        assert loop is not None
        try:
            changes = wait_for_partitions(consumer, self._changes_topic, stopped)
            snapshots = wait_for_partitions(consumer, self._snapshots_topic, stopped)
            if changes is None or snapshots is None:
                return
            partitions = changes + snapshots
            offsets = PartitionOffsets(self._kafka)
            self._changes_partitions = changes
            startup_ends = retrying(lambda: offsets.ends(partitions), stopped)
            lows = retrying(lambda: offsets.firsts(partitions), stopped)
            if startup_ends is None or lows is None:
                return
            start = self._start_offsets(offsets, startup_ends, lows)
            # From the store's offset, or the first record still held if retention deleted what
            # followed it (never the end, whatever auto.offset.reset says); else the beginning.
            consumer.assign([TopicPartition(tp.topic, tp.partition,
                                            max(start[key], lows.get(key, 0)) if key in start else _OFFSET_BEGINNING)
                             for tp in partitions for key in [(tp.topic, tp.partition)]])
            log.info("read model loading %s and %s up to offsets %s", self._changes_topic, self._snapshots_topic,
                     startup_ends)
            # Where the store is: the offsets written with the last batch (a partition not read
            # from yet: its low watermark, where reading it starts).
            written = {key: max(low, start.get(key, 0)) for key, low in lows.items()}
            self._written = dict(written)
            self._offsets = offsets
            caught_up = False
            waiting: list[tuple[dict[tuple[str, int], int], asyncio.Future[bool]]] = []
            while not stopped():
                waiting.extend(_drain(self._sync_requests))
                progress = self._fold(consumer.consume(_BATCH, timeout=0.02), consumer, partitions, written)
                newly_caught_up = not caught_up and _reached(written, startup_ends)
                caught_up = caught_up or newly_caught_up
                synced = [future for targets, future in waiting if _reached(written, targets)]
                # Drop the answered and the given-up (timed out: cancelled) waits.
                waiting = [(t, f) for t, f in waiting if f not in synced and not f.cancelled()]
                if progress is not None or newly_caught_up or synced:
                    loop.call_soon_threadsafe(self._deliver, progress or Progress(), caught_up, synced)
        finally:
            consumer.close()

    def _fold(self, messages: list[Any], consumer: Consumer, partitions: list[TopicPartition],
              written: dict[tuple[str, int], int]) -> Progress | None:
        """Fold a poll's records into the store and write them with the offsets reached; None when
        nothing moved."""
        batch = self.store.batch()
        applied = dropped = rows_applied = rows_dropped = 0
        touched: set[str] = set()
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("read-model consumer error: %s", error)
                continue
            topic = message.topic()
            try:
                if topic == self._changes_topic:
                    change = decode_value(self._change_codec, message)
                    origin = origin_of(change, message.headers(), _TRACE_NAMES)
                    touched.add(change["execution_id"])
                    if batch.apply_change(change, origin):
                        applied += 1
                    else:
                        dropped += 1
                else:
                    row = decode_value(self._snapshot_codec, message)
                    touched.add(row["execution_id"])
                    if batch.apply_snapshot(row):
                        rows_applied += 1
                    else:
                        rows_dropped += 1
            except DecodeError as undecodable:
                log.error("skipping an undecodable record: %s", undecodable,
                          extra={"topic": topic, "partition": message.partition(), "offset": message.offset()})
            except (UnusableRecord, KeyError, ValueError, TypeError) as unusable:  # never stop the feed on one record
                log.error("skipping an unusable record: %r", unusable,
                          extra={"topic": topic, "partition": message.partition(), "offset": message.offset()})
        positions = {(tp.topic, tp.partition): tp.offset for tp in consumer.position(partitions) if tp.offset >= 0}
        moved = {key: offset for key, offset in positions.items() if written.get(key) != offset}
        if not moved and not len(batch):
            return None
        batch.commit(moved)
        written.update(moved)
        self._written = dict(written)  # for sync() on the loop: replaced whole, so read whole
        return Progress((applied, dropped), (rows_applied, rows_dropped), frozenset(touched))

    def close(self) -> None:
        if self._thread is not None:
            self._thread.stop()
            if self._thread.alive:  # never close the store under a thread still writing it
                log.error("read-model thread did not stop; leaving its store open")
                return
        self.store.close()
        self._state.close()


def _reached(positions: dict[tuple[str, int], int], targets: dict[tuple[str, int], int]) -> bool:
    return all(positions.get(key, 0) >= target for key, target in targets.items())


def _drain(requests: queue.SimpleQueue[Any]) -> list[Any]:
    drained = []
    while True:
        try:
            drained.append(requests.get_nowait())
        except queue.Empty:
            return drained
