"""A task's record journal (all of a record's effects or none), its commit steps, and its close;
the Kafka transaction's status machine. A task runs on a real RocksDB store; the transaction it
writes into is a recording stand-in (the real one is exercised against the broker in
test_transaction_and_restore.py and by every processor test)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Message
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer, format_span_id, format_trace_id

from processor.runtime.journal import JournalStateError, OutputRecord
from processor.runtime.kv import KeyValueStore
from processor.runtime.store import PartitionStore
from processor.runtime.task import (
    ErrorPolicy,
    HandlerBug,
    OutputRefused,
    Punctuation,
    Task,
    TaskContext,
    TaskId,
    TaskState,
)
from processor.runtime.transaction import KafkaTransaction, TransactionStateError, TransactionStatus
from testkit.records import ConsumedRecord


class Bad(ValueError):
    """The bad-input error of these tests' handlers."""


class TextCodec:
    def encode(self, value: str) -> bytes:
        return value.encode()

    def decode(self, data: bytes) -> str:
        return data.decode()


@dataclass
class RecordingTxn:
    """Stands in for KafkaTransaction: what was produced into it, in order."""

    produced: list[tuple[str, bytes | None, bytes | None]] = field(default_factory=list)
    headers: list[Any] = field(default_factory=list)  # of each produced record, in order
    deliveries: list[Callable[[Any, Any], None]] = field(default_factory=list)

    def produce(self, topic: str, value: bytes | None, *, key: bytes | None = None, headers: Any = None,
                partition: int | None = None, on_delivery: Any = None) -> None:
        self.produced.append((topic, key, value))
        self.headers.append(headers)
        if on_delivery is not None:
            self.deliveries.append(on_delivery)

    def deliver_changelog(self, first_offset: int) -> None:
        """Play the delivery reports of the changelog records, at consecutive offsets."""
        for offset, report in enumerate(self.deliveries, first_offset):
            report(None, ConsumedRecord("changelog", 0, offset))
        self.deliveries.clear()


class DeadLetterRecorder:
    def __init__(self) -> None:
        self.letters: list[tuple[int, str, bool]] = []

    def dead_letter(self, txn: Any, message: Message, error: BaseException, *, bug: bool, minimal: bool = False,
                    on_delivery: Any = None) -> None:
        self.letters.append((message.offset(), type(error).__name__, bug))
        txn.produce("dead-letters", message.value(), key=message.key())


class Notes:
    """A processor with one typed store; each record's value says what its handler does."""

    def __init__(self, context: TaskContext) -> None:
        self._journal = context.journal
        self.notes: KeyValueStore[str] = KeyValueStore("notes", b"n/", TextCodec(), context.store, context.journal)
        self.due: list[Punctuation] = []  # what the next punctuations() call returns

    @property
    def stores(self) -> tuple[KeyValueStore[Any], ...]:
        return (self.notes,)

    def handlers(self) -> dict[str, Callable[[Message], None]]:
        return {"in": self.handle}

    def prepare_commit(self, txn: Any, refused: Any) -> None:
        """Nothing per transaction."""

    def punctuations(self) -> list[Punctuation]:
        due, self.due = self.due, []
        return due

    def note(self, key: str, value: str) -> None:
        """Work a punctuation does: one write and one output."""
        self.notes.put(key, value)
        self._journal.produce(OutputRecord("out", f"{key}={value}".encode(), key.encode()))

    def handle(self, message: Message) -> None:
        command, _, arg = message.value().decode().partition(" ")
        key = message.key().decode()
        if command == "put":
            self.notes.put(key, arg)
            self._journal.produce(OutputRecord("out", f"{key}={arg}".encode(), message.key()))
        elif command == "append":  # read-your-writes: the value as the previous records left it
            self.notes.put(key, (self.notes.get(key) or "") + arg)
        elif command == "put-and-settle":  # written, and not expected to be read again soon
            self.notes.put(key, arg)
            self.notes.uncache(key)
        elif command == "put-then-fail":
            self.notes.put(key, arg)
            self._journal.produce(OutputRecord("out", f"{key}={arg}".encode(), message.key()))
            raise Bad(f"refused after writing {key}") if arg == "bad" else RuntimeError("a bug after writing")


def record(offset: int, key: str, value: str) -> Message:
    return ConsumedRecord("in", 0, offset, key.encode(), value.encode())  # type: ignore[return-value]


@pytest.fixture
def store(tmp_path: Path) -> PartitionStore:
    store = PartitionStore(tmp_path / "notes", "changelog", 0)
    yield store
    store.close()


def running_task(store: PartitionStore, letters: DeadLetterRecorder, policy: ErrorPolicy = ErrorPolicy.DEAD_LETTER,
                 tracer: Tracer | None = None) -> Task:
    task = Task(TaskId("notes", 0), store, Notes, dead_letters=letters, bad_input=(Bad,), error_policy=policy,
                tracer=tracer)
    task.begin_restore()
    task.initialize()
    return task


def commit(task: Task, txn: RecordingTxn, first_offset: int = 0) -> None:
    task.prepare_commit(txn)  # type: ignore[arg-type]
    txn.deliver_changelog(first_offset)
    task.post_commit()


@pytest.mark.parametrize(("arg", "error", "bug"), [("bad", "Bad", False), ("boom", "RuntimeError", True)])
def test_task_handler_raising_after_writing_state_and_producing_leaves_neither_only_its_dead_letter(
    store: PartitionStore, arg: str, error: str, bug: bool
) -> None:
    letters = DeadLetterRecorder()
    task = running_task(store, letters)
    txn = RecordingTxn()

    task.process(record(0, "a", "put 1"), txn)  # type: ignore[arg-type]
    task.process(record(1, "b", f"put-then-fail {arg}"), txn)  # type: ignore[arg-type]
    task.process(record(2, "c", "put 3"), txn)  # type: ignore[arg-type]

    assert txn.produced == [("out", b"a", b"a=1"), ("dead-letters", b"b", f"put-then-fail {arg}".encode()),
                            ("out", b"c", b"c=3")]
    assert letters.letters == [(1, error, bug)]
    notes = task.stores[0]
    assert (notes.get("a"), notes.get("b"), notes.get("c")) == ("1", None, "3")
    commit(task, txn)
    assert store.get(b"n/b") is None and store.get(b"n/a") == b"1" and store.get(b"n/c") == b"3"
    assert [key for topic, key, _ in txn.produced if topic == "changelog"] == [b"n/a", b"n/c"]


def test_task_handler_bug_with_the_stop_policy_raises_and_leaves_nothing(store: PartitionStore) -> None:
    letters = DeadLetterRecorder()
    task = running_task(store, letters, ErrorPolicy.STOP)
    txn = RecordingTxn()

    with pytest.raises(HandlerBug, match=r"in\[0\]@4"):
        task.process(record(4, "b", "put-then-fail boom"), txn)  # type: ignore[arg-type]

    assert txn.produced == [] and letters.letters == []
    assert task.stores[0].get("b") is None and not task.journal.open


def test_task_later_records_read_earlier_writes_and_each_key_is_written_once_at_commit(store: PartitionStore) -> None:
    task = running_task(store, DeadLetterRecorder())
    txn = RecordingTxn()
    for offset, value in enumerate(["append x", "append y", "append z"]):
        task.process(record(offset, "k", value), txn)  # type: ignore[arg-type]
    assert task.stores[0].get("k") == "xyz" and store.get(b"n/k") is None  # nothing in RocksDB before commit

    commit(task, txn, first_offset=10)

    assert [(topic, key, value) for topic, key, value in txn.produced] == [("changelog", b"n/k", b"xyz")]
    assert store.get(b"n/k") == b"xyz" and store.changelog_next_offset == 11


def test_store_value_uncached_in_its_transaction_is_committed_but_not_kept_decoded(store: PartitionStore) -> None:
    task = running_task(store, DeadLetterRecorder())
    txn = RecordingTxn()
    task.process(record(0, "a", "put kept"), txn)  # type: ignore[arg-type]
    task.process(record(1, "b", "put-and-settle done"), txn)  # type: ignore[arg-type]
    notes = task.stores[0]
    assert notes.get("b") == "done"  # read-your-writes holds until the commit

    commit(task, txn)

    assert notes.cached == 1 and store.get(b"n/b") == b"done"  # only "a" stays decoded in memory
    assert notes.get("b") == "done" and notes.cached == 2  # read again from RocksDB when asked


def test_task_abort_forgets_the_transactions_writes_and_keeps_committed_state(store: PartitionStore) -> None:
    task = running_task(store, DeadLetterRecorder())
    first = RecordingTxn()
    task.process(record(0, "k", "put committed"), first)  # type: ignore[arg-type]
    commit(task, first)

    task.process(record(1, "k", "put aborted"), RecordingTxn())  # type: ignore[arg-type]
    assert task.stores[0].get("k") == "aborted"
    task.abort()

    assert task.stores[0].get("k") == "committed" and store.get(b"n/k") == b"committed"


def test_task_closed_on_revoke_mid_batch_drops_its_caches_and_refuses_records(store: PartitionStore) -> None:
    task = running_task(store, DeadLetterRecorder())
    txn = RecordingTxn()
    task.process(record(0, "k", "put 1"), txn)  # type: ignore[arg-type]
    commit(task, txn)
    notes = task.stores[0]
    assert notes.get("k") == "1" and notes.cached == 1
    task.process(record(1, "k", "put 2"), RecordingTxn())  # type: ignore[arg-type]  (a batch in flight)

    task.close()

    assert task.state is TaskState.CLOSED and task.stores == ()
    assert notes.cached == 0  # the decoded values went with the task
    with pytest.raises(Exception, match="closed"):
        task.process(record(2, "k", "put 3"), RecordingTxn())  # type: ignore[arg-type]


def test_journal_refuses_writes_outside_the_handling_of_a_record(store: PartitionStore) -> None:
    task = running_task(store, DeadLetterRecorder())
    with pytest.raises(JournalStateError):
        task.stores[0].put("k", "v")


# -- the Kafka transaction's status machine ---------------------------------------------------


class FailingProducer:
    """A producer whose commit fails; everything else succeeds."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def begin_transaction(self) -> None:
        self.calls.append("begin")

    def produce(self, topic: str, **kwargs: Any) -> None:
        self.calls.append("produce")

    def flush(self, timeout: float) -> int:
        return 0

    def send_offsets_to_transaction(self, *args: Any) -> None:
        self.calls.append("offsets")

    def commit_transaction(self, timeout: float) -> None:
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "commit timed out", txn_requires_abort=True))

    def abort_transaction(self, timeout: float) -> None:
        self.calls.append("abort")


def test_kafka_transaction_fails_when_an_exception_escapes_and_then_allows_only_abort() -> None:
    producer = FailingProducer()
    txn = KafkaTransaction(producer)  # type: ignore[arg-type]
    txn.produce("t", b"v")
    txn.prepare([], None)
    with pytest.raises(KafkaException):
        txn.commit()

    assert txn.status is TransactionStatus.FAILED
    with pytest.raises(TransactionStateError, match="failed"):
        txn.produce("t", b"again")
    with pytest.raises(TransactionStateError):
        txn.commit()
    txn.abort()
    assert txn.status is TransactionStatus.ABORTED and producer.calls[-1] == "abort"


def test_kafka_transaction_refuses_commit_before_prepare() -> None:
    txn = KafkaTransaction(FailingProducer())  # type: ignore[arg-type]
    with pytest.raises(TransactionStateError, match=r"commit\(\) needs prepared"):
        txn.commit()
    assert txn.status is TransactionStatus.OPEN  # a refused call changes nothing


TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01".encode()


def traced(offset: int, key: str, value: str, headers: list[tuple[str, bytes]]) -> Message:
    return ConsumedRecord("in", 0, offset, key.encode(), value.encode(), headers)  # type: ignore[return-value]


def test_task_without_a_tracer_passes_the_input_trace_context_on_to_every_output(store: PartitionStore) -> None:
    task = running_task(store, DeadLetterRecorder())
    txn = RecordingTxn()

    task.process(traced(0, "a", "put 1", [("traceparent", TRACEPARENT), ("tracestate", b"k=v"), ("other", b"x")]),
                 txn)  # type: ignore[arg-type]
    task.process(record(1, "b", "put 2"), txn)  # type: ignore[arg-type]

    assert txn.headers == [[("traceparent", TRACEPARENT), ("tracestate", b"k=v")], None]
    assert task.journal.trace_headers == []  # nothing carried over to the next record


def test_task_with_a_tracer_makes_a_child_span_per_record_and_its_outputs_name_that_span(
    store: PartitionStore,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    task = running_task(store, DeadLetterRecorder(), tracer=provider.get_tracer("test"))
    txn = RecordingTxn()

    task.process(traced(0, "a", "put 1", [("traceparent", TRACEPARENT)]), txn)  # type: ignore[arg-type]

    (span,) = exporter.get_finished_spans()
    assert span.name == "in process" and span.parent is not None
    assert format_trace_id(span.context.trace_id) == TRACE_ID and format_span_id(span.parent.span_id) == "00f067aa0ba902b7"
    (headers,) = txn.headers
    assert headers == [("traceparent", f"00-{TRACE_ID}-{format_span_id(span.context.span_id)}-01".encode())]


def test_task_punctuate_with_nothing_due_opens_no_transaction(store: PartitionStore) -> None:
    task = running_task(store, DeadLetterRecorder())
    opened: list[RecordingTxn] = []

    def open_transaction() -> RecordingTxn:
        opened.append(RecordingTxn())
        return opened[-1]

    assert task.punctuate(open_transaction) is False  # type: ignore[arg-type]
    assert opened == []


def test_task_punctuation_writes_and_produces_into_the_transaction_with_its_trace_headers(
    store: PartitionStore,
) -> None:
    task = running_task(store, DeadLetterRecorder())
    notes = task._processor
    assert isinstance(notes, Notes)
    trace = [("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]
    notes.due = [Punctuation("note a", trace, lambda: notes.note("a", "late"), lambda why: None)]
    txn = RecordingTxn()

    assert task.punctuate(lambda: txn) is True  # type: ignore[arg-type,return-value]

    assert txn.produced == [("out", b"a", b"a=late")] and txn.headers == [trace]
    commit(task, txn)
    assert store.get(b"n/a") == b"late" and not task.journal.open


def test_task_punctuation_that_raises_leaves_nothing_of_it_and_runs_its_abandon(store: PartitionStore) -> None:
    task = running_task(store, DeadLetterRecorder())
    notes = task._processor
    assert isinstance(notes, Notes)

    def fails() -> None:
        notes.note("half", "written")
        raise RuntimeError("a bug in the middle")

    reasons: list[str] = []

    def abandon(why: str) -> None:
        reasons.append(why)
        notes.note("abandoned", "yes")

    notes.due = [Punctuation("fails", [], fails, abandon),
                 Punctuation("next", [], lambda: notes.note("next", "ran"), lambda why: None)]
    txn = RecordingTxn()

    assert task.punctuate(lambda: txn) is True  # type: ignore[arg-type,return-value]

    assert txn.produced == [("out", b"abandoned", b"abandoned=yes"), ("out", b"next", b"next=ran")]
    assert reasons == ["it failed (a bug, not bad input): RuntimeError('a bug in the middle')"]
    commit(task, txn)
    assert store.get(b"n/half") is None and store.get(b"n/abandoned") == b"yes" and store.get(b"n/next") == b"ran"


def test_task_punctuation_that_raises_with_the_stop_policy_raises_and_leaves_nothing(store: PartitionStore) -> None:
    task = running_task(store, DeadLetterRecorder(), ErrorPolicy.STOP)
    notes = task._processor
    assert isinstance(notes, Notes)

    def fails() -> None:
        notes.note("half", "written")
        raise RuntimeError("a bug")

    notes.due = [Punctuation("fails", [], fails, lambda why: notes.note("abandoned", why))]
    txn = RecordingTxn()
    with pytest.raises(HandlerBug, match="punctuation fails"):
        task.punctuate(lambda: txn)  # type: ignore[arg-type,return-value]
    assert txn.produced == [] and not task.journal.open


class RefusingTxn(RecordingTxn):
    """Refuses at once any record to `refused_topic`, as the producer does one over its size limit."""

    refused_topic = "out"

    def produce(self, topic: str, value: bytes | None, *, key: bytes | None = None, headers: Any = None,
                partition: int | None = None, on_delivery: Any = None) -> None:
        if topic == self.refused_topic and value != b"small=answer":
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "too large"))
        super().produce(topic, value, key=key, headers=headers, partition=partition, on_delivery=on_delivery)


def test_task_punctuation_whose_output_is_refused_is_abandoned_in_the_redone_transaction(
    store: PartitionStore,
) -> None:
    task = running_task(store, DeadLetterRecorder())
    notes = task._processor
    assert isinstance(notes, Notes)

    def work() -> list[Punctuation]:
        return [Punctuation("big", [], lambda: notes.note("big", "x" * 10),
                            lambda why: notes.note("small", "answer"))]

    notes.due = work()
    with pytest.raises(OutputRefused, match="MSG_SIZE_TOO_LARGE") as refused:
        task.punctuate(lambda: RefusingTxn())  # type: ignore[arg-type,return-value]
    assert refused.value.where == ("punctuation:big", 0, 0)
    task.abort()  # what the loop does: abort, rewind, redo

    notes.due = work()  # due again in the redone transaction
    txn = RecordingTxn()
    assert task.punctuate(lambda: txn) is True  # type: ignore[arg-type,return-value]
    assert txn.produced == [("out", b"small", b"small=answer")]
    commit(task, txn)

    notes.due = work()  # once an abandon committed, the name is forgotten: new work of that name runs
    later = RecordingTxn()
    task.punctuate(lambda: later)  # type: ignore[arg-type,return-value]
    assert later.produced == [("out", b"big", b"big=xxxxxxxxxx")]
