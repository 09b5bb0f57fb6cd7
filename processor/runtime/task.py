"""A task: one partition of one subtopology, with its store, typed stores, codecs and handlers.

The shape of Kafka Streams' `StreamTask`, with an explicit state switch:

    CREATED --restore--> RESTORING --initialize--> RUNNING --close--> CLOSED

- `process(message, txn)`: hand one input record to its handler inside the task's
  `RecordJournal`; bad input (and, by policy, a handler bug) is dead-lettered instead;
- `prepare_commit(txn)`: encode every value written in the open transaction once and send it to
  the changelog, inside the transaction;
- `post_commit()`: the transaction committed: write RocksDB and the checkpoint;
- `abort()`: the transaction was aborted: forget what it wrote (committed state stays);
- `close()`: the partition left this instance: close the store and drop every cache with it.

What a subtopology does with its records is its `TaskProcessor`, built once per task (so its
codecs and their caches live and die with the task).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import Message

from kafka_client.records import coordinates
from processor.runtime.journal import RecordJournal
from processor.runtime.kv import KeyValueStore
from processor.runtime.store import PartitionStore, StagedWrites
from processor.runtime.transaction import KafkaTransaction

log = logging.getLogger(__name__)

Handler = Callable[[Message], None]


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


@dataclass(frozen=True, slots=True)
class TaskContext:
    """What a task's processor gets to build its stores and outputs with."""

    task_id: TaskId
    store: PartitionStore
    journal: RecordJournal


class TaskProcessor(Protocol):
    """A subtopology's record handlers and the typed stores they use, for one task."""

    @property
    def stores(self) -> Sequence[KeyValueStore[Any]]: ...

    def handlers(self) -> Mapping[str, Handler]:
        """Input topic name -> handler. A handler raises a bad-input error to dead-letter its record."""
        ...

    def prepare_commit(self, txn: KafkaTransaction) -> None:
        """Produce what belongs to the transaction as a whole (once per transaction, not per record)."""
        ...


class DeadLetterSink(Protocol):
    def dead_letter(self, txn: KafkaTransaction, message: Message, error: BaseException, *, bug: bool) -> None: ...


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
    ) -> None:
        self.id = task_id
        self.store = store
        self._build = build
        self._dead_letters = dead_letters
        self._bad_input = bad_input
        self._error_policy = error_policy
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
        self._processor = self._build(TaskContext(self.id, self.store, self.journal))
        self._handlers = self._processor.handlers()
        self.state = TaskState.RUNNING

    @property
    def stores(self) -> Sequence[KeyValueStore[Any]]:
        return () if self._processor is None else self._processor.stores

    # -- records ----------------------------------------------------------------------------

    def process(self, message: Message, txn: KafkaTransaction) -> None:
        """Fold one input record into the open transaction: all of its effects, or its dead letter."""
        self._require(TaskState.RUNNING)
        topic, partition, offset = coordinates(message)
        handler = self._handlers[topic]
        journal = self.journal
        journal.begin()
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
            self._dead_letters.dead_letter(txn, message, error, bug=True)
        else:
            journal.commit(txn)

    def skip(self, message: Message, txn: KafkaTransaction, error: BaseException) -> None:
        """Dead-letter a record without handling it (it is known to fail, e.g. its outputs were refused)."""
        self._require(TaskState.RUNNING)
        self._dead_letters.dead_letter(txn, message, error, bug=False)

    # -- commit -----------------------------------------------------------------------------

    def prepare_commit(self, txn: KafkaTransaction) -> None:
        """Send every value written in the open transaction to the changelog, encoded once."""
        self._require(TaskState.RUNNING)
        if self._processor is not None:
            self._processor.prepare_commit(txn)
        for kv in self.stores:
            kv.flush(self._staged)
        self._staged.produce_changelog(txn)

    def post_commit(self) -> None:
        """The transaction committed: RocksDB and the checkpoint follow the changelog."""
        self._require(TaskState.RUNNING)
        self._staged.apply()
        for kv in self.stores:
            kv.committed()

    def abort(self) -> None:
        """The transaction was aborted: forget its writes (committed state and caches stay valid)."""
        self.journal.discard()
        self._staged.discard()
        for kv in self.stores:
            kv.aborted()

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
