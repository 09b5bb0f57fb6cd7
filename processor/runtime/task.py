"""A task: one partition of one subtopology, with its store, typed stores, codecs and handlers.

The shape of Kafka Streams' `StreamTask`, with an explicit state switch:

    CREATED --restore--> RESTORING --initialize--> RUNNING --close--> CLOSED

- `process(message, txn)`: hand one input record to its handler inside the task's
  `RecordJournal`; bad input (and, by policy, a handler bug) is dead-lettered instead;
- `prepare_commit(txn)`: encode every value written in the open transaction once and send it to
  the changelog, inside the transaction;
- `post_commit()`: the transaction committed: write RocksDB and the checkpoint;
- `abort()`: the transaction was aborted: forget what it wrote (committed state stays);
- `close()`: the partition left this instance: close the store and drop every cache with it;
- `punctuate(open_transaction)`: work due without an input record (Kafka Streams' punctuator),
  e.g. an admission that waited for its proposal's partition to be read, inside the transaction.

What a subtopology does with its records is its `TaskProcessor`, built once per task (so its
codecs and their caches live and die with the task).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeGuard

from confluent_kafka import KafkaError, KafkaException, Message
from opentelemetry.trace import SpanKind, Tracer

from kafka_client.partitioning import misrouting
from kafka_client.records import coordinates
from observability import tracing
from processor.runtime.journal import RecordJournal
from processor.runtime.kv import KeyValueStore
from processor.runtime.store import PartitionStore, StagedWrites
from processor.runtime.transaction import DeliveryCallback, Headers, KafkaTransaction

log = logging.getLogger(__name__)

Handler = Callable[[Message], None]
Coordinates = tuple[str, int, int]  # (topic, partition, offset) of an input record

# Errors about one record (its size, its content): the input that caused it is dead-lettered and the
# partition goes on. Anything else (a broker away, a timeout, fencing) is not the input's fault.
RECORD_LEVEL_ERRORS = frozenset({
    KafkaError.MSG_SIZE_TOO_LARGE,  # over the producer's message.max.bytes or the topic's max.message.bytes
    KafkaError.RECORD_LIST_TOO_LARGE,
    KafkaError.INVALID_RECORD,
    KafkaError.INVALID_MSG,
})


def record_level(error: KafkaError | None) -> TypeGuard[KafkaError]:
    return error is not None and error.code() in RECORD_LEVEL_ERRORS


class OutputRefused(Exception):
    """A record an input caused was refused (by the producer or the broker) for itself, not for the
    broker's state: that input is dead-lettered instead of handled (the loop aborts the transaction,
    remembers the input and reprocesses from the committed offsets)."""

    def __init__(self, where: Coordinates, reason: str) -> None:
        super().__init__(f"{where[0]}[{where[1]}]@{where[2]}: {reason}")
        self.where = where
        self.reason = reason


class MisroutedRecord(ValueError):
    """A keyed input read from a partition its key does not belong to (the producer's partitioner)."""


class TaskState(enum.Enum):
    CREATED = "created"  # store open, not yet restored
    RESTORING = "restoring"  # catching up with its changelog
    RUNNING = "running"  # processing records
    CLOSED = "closed"  # store closed, caches dropped


class TaskStateError(RuntimeError):
    """A task method was called in a state that does not allow it."""


class ErrorPolicy(enum.Enum):
    """What a handler bug (an exception that is not a typed bad-input error) does."""

    DEAD_LETTER = "dead-letter"  # logged as an error with its traceback, dead-lettered, the partition goes on
    STOP = "stop"  # the transaction is aborted and the processor stops (exit code 1)


class HandlerBug(RuntimeError):
    """A handler raised something that is not bad input, and the error policy is STOP."""


@dataclass(frozen=True, slots=True, order=True)
class TaskId:
    subtopology: str
    partition: int

    def __str__(self) -> str:
        return f"{self.subtopology}/{self.partition}"


_ROUTED_KEYS_KEPT = 20_000  # ~2 MB of keys at most per task; cleared (and checked again) beyond


class InputPositions(Protocol):
    """How far this instance has read its input partitions, and where they end (the loop keeps it)."""

    def read_to(self, topic: str, partition: int) -> int | None:
        """The offset after the last record of the partition handed to its task, or the end the
        consumer reported reaching (so a partition with nothing new is read to its end); None
        until either is known since the partition was assigned."""
        ...

    def end_offset(self, topic: str, partition: int) -> int | None:
        """The partition's end offset now, asked of the broker; None if it cannot be asked."""
        ...


class UnknownPositions:
    """Nothing known (a processor run without a consumer, e.g. in process): nothing waits for a read."""

    def read_to(self, topic: str, partition: int) -> int | None:
        return None

    def end_offset(self, topic: str, partition: int) -> int | None:
        return None


@dataclass(frozen=True, slots=True)
class TaskContext:
    """What a task's processor gets to build its stores and outputs with."""

    task_id: TaskId
    store: PartitionStore
    journal: RecordJournal
    cache_bytes: int = 32 * 1024 * 1024  # decoded values the task's stores may keep in memory
    inputs: InputPositions = UnknownPositions()


@dataclass(frozen=True, slots=True)
class Punctuation:
    """One unit of work a task does without an input record. `run` writes and produces through the
    task's journal as a handler does; its outputs carry `trace_headers`. If `run` raises (a bug) or
    the broker refuses one of its outputs, its effects are discarded and `abandon(reason)` runs
    instead, in the same or the redone transaction: it must end the work with a small final answer,
    so the work is not due again. `name` is unique among the task's pending punctuations."""

    name: str
    trace_headers: Headers
    run: Callable[[], None]
    abandon: Callable[[str], None]


class TaskProcessor(Protocol):
    """A subtopology's record handlers and the typed stores they use, for one task."""

    @property
    def stores(self) -> Sequence[KeyValueStore[Any]]: ...

    def handlers(self) -> Mapping[str, Handler]:
        """Input topic name -> handler. A handler raises a bad-input error to dead-letter its record."""
        ...

    def prepare_commit(self, txn: KafkaTransaction, refused: Callable[[bytes], DeliveryCallback]) -> None:
        """Produce what belongs to the transaction as a whole (once per transaction, not per record);
        `refused(store_key)` gives the delivery callback of a record that follows from that key's value
        (so a refusal is blamed on the input that last wrote it)."""
        ...

    def punctuations(self) -> Sequence[Punctuation]:
        """Work due now without an input record; asked once per loop iteration, so cheap when none."""
        ...


class DeadLetterSink(Protocol):
    def dead_letter(self, txn: KafkaTransaction, message: Message, error: BaseException, *, bug: bool,
                    minimal: bool = False, on_delivery: DeliveryCallback | None = None) -> None: ...


class Task:
    def __init__(
        self,
        task_id: TaskId,
        store: PartitionStore,
        build: Callable[[TaskContext], TaskProcessor],
        *,
        dead_letters: DeadLetterSink,
        bad_input: tuple[type[BaseException], ...],
        error_policy: ErrorPolicy = ErrorPolicy.DEAD_LETTER,
        partitions: int | None = None,
        cache_bytes: int = 32 * 1024 * 1024,
        on_misrouted: Callable[[str], None] | None = None,
        tracer: Tracer | None = None,
        inputs: InputPositions | None = None,
    ) -> None:
        self.id = task_id
        self._inputs = inputs or UnknownPositions()
        self._tracer = tracer  # None: no span per record, the input's trace context passed on as it is
        self.store = store
        self._build = build
        self._dead_letters = dead_letters
        self._bad_input = bad_input
        self._error_policy = error_policy
        self._partitions = partitions  # of every input topic (co-partitioned); None: keys are not checked
        self._cache_bytes = cache_bytes
        self._on_misrouted = on_misrouted
        self._routed_keys: set[bytes | None] = set()  # keys known to belong to this partition (bounded)
        self._writers: dict[bytes, Coordinates] = {}  # store key -> the input that last wrote it, this transaction
        self._refused: dict[Coordinates, str] = {}  # inputs whose outputs the broker refused, this transaction
        # Punctuations whose outputs were refused: the redone transaction runs their `abandon`
        # (kept across the abort; dropped once an abandon committed).
        self._abandon_next: dict[str, str] = {}
        self._abandoned: set[str] = set()  # abandoned in the open transaction
        self.journal = RecordJournal()
        self._staged = StagedWrites(store)
        self._processor: TaskProcessor | None = None
        self._handlers: Mapping[str, Handler] = {}
        self.state = TaskState.CREATED

    def __repr__(self) -> str:
        return f"Task({self.id}, {self.state.value})"

    # -- lifecycle --------------------------------------------------------------------------

    def begin_restore(self) -> None:
        self._require(TaskState.CREATED)
        self.state = TaskState.RESTORING

    def initialize(self) -> None:
        """The store is up to date: build the processor and start processing."""
        self._require(TaskState.RESTORING)
        self._processor = self._build(TaskContext(self.id, self.store, self.journal, self._cache_bytes, self._inputs))
        self._handlers = self._processor.handlers()
        self.state = TaskState.RUNNING

    @property
    def stores(self) -> Sequence[KeyValueStore[Any]]:
        return () if self._processor is None else self._processor.stores

    # -- records ----------------------------------------------------------------------------

    def process(self, message: Message, txn: KafkaTransaction) -> None:
        """Fold one input record into the open transaction: all of its effects, or its dead letter.

        Raises OutputRefused if the producer refuses one of the record's outputs at once (nothing of
        the record may land then, so the transaction must be aborted and the record dead-lettered)."""
        self._require(TaskState.RUNNING)
        where = coordinates(message)
        topic, partition, offset = where
        handler = self._handlers[topic]
        if self._partitions is not None:
            key = message.key()
            if key not in self._routed_keys:  # murmur2 in Python costs ~10 µs: each key is checked once
                wrong = misrouting(key, partition, self._partitions)
                if wrong is not None:
                    if self._on_misrouted is not None:
                        self._on_misrouted(topic)
                    self._dead_letters.dead_letter(txn, message, MisroutedRecord(wrong), bug=False,
                                                   on_delivery=self._delivery(where))
                    return
                if len(self._routed_keys) >= _ROUTED_KEYS_KEPT:
                    self._routed_keys.clear()
                self._routed_keys.add(key)
        journal = self.journal
        journal.begin()
        passed_on = tracing.passed_on(message.headers())
        if self._tracer is None:
            journal.trace_headers = passed_on
            self._handle(handler, message, txn, where)
            return
        # A span per record only when spans are exported: a child of the input's trace context, and
        # the parent of the record's outputs (an input without one keeps none: its handler may set it).
        with self._tracer.start_as_current_span(f"{topic} process", context=tracing.context_from_kafka(passed_on),
                                                kind=SpanKind.CONSUMER, attributes={
                                                    "messaging.system": "kafka", "messaging.operation": "process",
                                                    "messaging.destination.name": topic,
                                                    "messaging.destination.partition.id": str(partition),
                                                    "messaging.kafka.message.offset": offset}):
            journal.trace_headers = tracing.kafka_headers() if passed_on else []
            self._handle(handler, message, txn, where)

    def _handle(self, handler: Handler, message: Message, txn: KafkaTransaction, where: Coordinates) -> None:
        topic, partition, offset = where
        journal = self.journal
        try:
            handler(message)
        except self._bad_input as error:  # bad input never stops the processor
            journal.discard()
            self._dead_letters.dead_letter(txn, message, error, bug=False)
        except Exception as error:
            journal.discard()
            if self._error_policy is ErrorPolicy.STOP:
                raise HandlerBug(f"handler of {topic}[{partition}]@{offset} failed: {error!r}") from error
            log.error("handler failed; dead-lettering the record (error policy %s)", self._error_policy.value,
                      exc_info=True, extra={"topic": topic, "partition": partition, "offset": offset})
            self._dead_letters.dead_letter(txn, message, error, bug=True, on_delivery=self._delivery(where))
        else:
            try:
                written = journal.commit(txn, on_delivery=self._delivery(where))
            except KafkaException as error:
                refused = _refused_at_once(error)
                if refused is None:
                    raise
                raise OutputRefused(where, _describe(refused)) from error
            for key in written:
                self._writers[key] = where

    def skip(self, message: Message, txn: KafkaTransaction, error: OutputRefused, *, minimal: bool = False) -> None:
        """Dead-letter a record without handling it: its outputs were refused (its effects never land).
        `minimal`: the dead letter itself was refused once: send it without the original value and headers."""
        self._require(TaskState.RUNNING)
        where = coordinates(message)
        try:
            self._dead_letters.dead_letter(txn, message, error, bug=False, minimal=minimal,
                                           on_delivery=self._delivery(where))
        except KafkaException as error:
            refused = _refused_at_once(error)
            if refused is None:
                raise
            raise OutputRefused(where, f"its dead letter was refused too: {_describe(refused)}") from error

    def punctuate(self, open_transaction: Callable[[], KafkaTransaction]) -> bool:
        """Run the processor's due punctuations inside the open transaction (opened only if there is
        work); True if any ran. Each is all or nothing, like a record. One that raises is logged
        and abandoned (or, with the STOP policy, raises HandlerBug); one whose output the producer
        refuses at once raises OutputRefused (the loop aborts and redoes the transaction, in which
        it is abandoned), as does, through `refused()`, one the broker refuses at delivery."""
        if self.state is not TaskState.RUNNING or self._processor is None:
            return False
        due = self._processor.punctuations()
        if not due:
            return False
        txn = open_transaction()
        journal = self.journal
        for work in due:
            where: Coordinates = (f"punctuation:{work.name}", self.id.partition, 0)
            why = self._abandon_next.get(work.name)
            journal.begin()
            journal.trace_headers = work.trace_headers
            if why is None:
                try:
                    work.run()
                except Exception as error:
                    journal.discard()
                    if self._error_policy is ErrorPolicy.STOP:
                        raise HandlerBug(f"punctuation {work.name} of task {self.id} failed: {error!r}") from error
                    log.error("punctuation %s of task %s failed; abandoning it", work.name, self.id, exc_info=True)
                    why = f"it failed (a bug, not bad input): {error!r}"
                    journal.begin()
                    journal.trace_headers = work.trace_headers
            if why is not None:
                work.abandon(why)
                self._abandoned.add(work.name)
            abandon_later = partial(self._abandon_later, work.name)
            try:
                journal.commit(txn, on_delivery=self._delivery(where, then=abandon_later))
            except KafkaException as error:
                refused = _refused_at_once(error)
                if refused is None:
                    raise
                abandon_later(_describe(refused))
                raise OutputRefused(where, _describe(refused)) from error
        return True

    def _abandon_later(self, name: str, reason: str) -> None:
        """A punctuation's output was refused: the redone transaction abandons it instead."""
        self._abandon_next[name] = f"its output was refused: {reason}"

    def refused(self) -> dict[Coordinates, str]:
        """The inputs (of the open transaction) whose outputs the broker refused, and why."""
        return dict(self._refused)

    def _delivery(self, where: Coordinates, then: Callable[[str], None] | None = None) -> DeliveryCallback:
        """Remembers a record-level refusal of an output of `where` (and tells `then` why)."""
        def delivered(error: KafkaError | None, _: Message) -> None:
            if record_level(error):
                self._refused.setdefault(where, _describe(error))
                if then is not None:
                    then(_describe(error))
        return delivered

    def _blame(self, store_key: bytes) -> DeliveryCallback:
        """The delivery callback of a record that follows from a store key's value (changelog, table row)."""
        def delivered(error: KafkaError | None, _: Message) -> None:
            self._blame_writer(store_key, error)
        return delivered

    def _blame_writer(self, store_key: bytes, error: KafkaError | None) -> None:
        writer = self._writers.get(store_key)
        if writer is not None and record_level(error):
            self._refused.setdefault(writer, f"a record its state wrote was refused: {_describe(error)}")

    # -- commit -----------------------------------------------------------------------------

    def prepare_commit(self, txn: KafkaTransaction) -> None:
        """Send every value written in the open transaction to the changelog, encoded once."""
        self._require(TaskState.RUNNING)
        if self._processor is not None:
            self._processor.prepare_commit(txn, self._blame)
        for kv in self.stores:
            kv.flush(self._staged)
        self._staged.produce_changelog(txn, on_refused=self._blame_writer)

    def post_commit(self) -> None:
        """The transaction committed: RocksDB and the checkpoint follow the changelog."""
        self._require(TaskState.RUNNING)
        self._staged.apply()
        for kv in self.stores:
            kv.committed()
        self._writers.clear()
        self._refused.clear()
        for name in self._abandoned:
            self._abandon_next.pop(name, None)
        self._abandoned.clear()

    def abort(self) -> None:
        """The transaction was aborted: forget its writes (committed state and caches stay valid)."""
        self.journal.discard()
        self._staged.discard()
        for kv in self.stores:
            kv.aborted()
        self._writers.clear()
        self._refused.clear()
        self._abandoned.clear()

    def close(self) -> None:
        """The partition left this instance: nothing of this task outlives it."""
        if self.state is TaskState.CLOSED:
            return
        self.abort()
        for kv in self.stores:
            kv.clear_cache()
        self._processor = None
        self._handlers = {}
        self.store.close()
        self.state = TaskState.CLOSED

    def _require(self, state: TaskState) -> None:
        if self.state is not state:
            raise TaskStateError(f"task {self.id} is {self.state.value}, needs {state.value}")


def _refused_at_once(error: KafkaException) -> KafkaError | None:
    """The producer's error if it refused a record for itself (too large, invalid), else None."""
    kafka_error = error.args[0] if error.args else None
    return kafka_error if isinstance(kafka_error, KafkaError) and record_level(kafka_error) else None


def _describe(error: KafkaError) -> str:
    return f"{error.name()}: {error.str()}"
