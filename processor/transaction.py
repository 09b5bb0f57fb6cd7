"""One Kafka transaction of the processor, with an explicit status and a prepare/commit split.

Everything a batch of inputs causes goes through this object: records for output topics,
state writes (held in memory, readable back within the transaction), the changelog records
for those writes and the consumed offsets. `prepare()` hands all of it to the transactional
producer; `commit()` commits the Kafka transaction and only then writes RocksDB, so a store
never holds state whose changelog record and input offsets were not committed with it.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Sequence

from confluent_kafka import KafkaError, KafkaException, Message, Producer, TopicPartition

from processor.state_store import PartitionStore

Headers = list[tuple[str, bytes]]
_MISSING = object()


class TransactionStatus(enum.Enum):
    OPEN = "open"
    PREPARED = "prepared"
    COMMITTED = "committed"
    ABORTED = "aborted"


class TransactionStateError(RuntimeError):
    """A method was called in a status that does not allow it."""


class ProcessingTransaction:
    def __init__(self, producer: Producer, *, timeout_s: float = 30.0) -> None:
        self._producer = producer
        self._timeout_s = timeout_s
        # Keyed by store: each store has its own changelog topic-partition.
        self._writes: dict[PartitionStore, dict[bytes, bytes | None]] = defaultdict(dict)
        self._last_changelog_offset: dict[tuple[str, int], int] = {}
        self._delivery_error: KafkaError | None = None
        # Effects of the input record being handled, held back until it is handled in full.
        self._staged: list[tuple[str, dict[str, object]]] | None = None
        self._undo: list[tuple[PartitionStore, bytes, object]] | None = None
        self.records_produced = 0
        producer.begin_transaction()
        self.status = TransactionStatus.OPEN

    # -- state -------------------------------------------------------------------------

    def get(self, store: PartitionStore, key: bytes) -> bytes | None:
        writes = self._writes.get(store)
        if writes is not None and key in writes:
            return writes[key]
        return store.get(key)

    def put(self, store: PartitionStore, key: bytes, value: bytes | None) -> None:
        """Write (or with None, delete) a key of a store."""
        self._require(TransactionStatus.OPEN)
        writes = self._writes[store]
        if self._undo is not None:
            self._undo.append((store, key, writes.get(key, _MISSING)))
        writes[key] = value

    @property
    def pending_writes(self) -> int:
        return sum(len(writes) for writes in self._writes.values())

    # -- output ------------------------------------------------------------------------

    def produce(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> None:
        self._require(TransactionStatus.OPEN)
        kwargs: dict[str, object] = {"key": key, "value": value, "on_delivery": self._on_delivery}
        if headers:
            kwargs["headers"] = headers
        if partition is not None:
            kwargs["partition"] = partition
        if self._staged is not None:
            self._staged.append((topic, kwargs))
        else:
            self._produce(topic, kwargs)

    # -- one input record: all of its effects or none ----------------------------------

    def begin_record(self) -> None:
        """Hold back the effects of the next input record until `end_record`."""
        self._staged, self._undo = [], []

    def end_record(self) -> None:
        """The record was handled in full: its outputs go to the producer."""
        staged, self._staged, self._undo = self._staged or [], None, None
        for topic, kwargs in staged:
            self._produce(topic, kwargs)

    def rollback_record(self) -> None:
        """Handling failed part-way: forget its outputs and state writes (it is dead-lettered instead)."""
        undo, self._staged, self._undo = self._undo or [], None, None
        for store, key, previous in reversed(undo):
            if previous is _MISSING:
                self._writes[store].pop(key, None)
            else:
                self._writes[store][key] = previous  # type: ignore[assignment]

    # -- completion --------------------------------------------------------------------

    def prepare(self, offsets: Sequence[TopicPartition], group_metadata: object) -> None:
        """Produce the changelog and attach the consumed offsets to the transaction."""
        self._require(TransactionStatus.OPEN)
        for store, writes in self._writes.items():
            for key, value in writes.items():
                self._produce(
                    store.changelog,
                    {"key": key, "value": value, "partition": store.partition, "on_delivery": self._on_changelog_delivery},
                )
        # Flushing serves the delivery reports, which carry the changelog offsets.
        if self._producer.flush(self._timeout_s) > 0:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "flush timed out", txn_requires_abort=True))
        if self._delivery_error is not None:
            raise KafkaException(self._delivery_error)
        if offsets:
            self._producer.send_offsets_to_transaction(list(offsets), group_metadata, self._timeout_s)
        self.status = TransactionStatus.PREPARED

    def commit(self) -> None:
        """Commit the Kafka transaction, then (and only then) write the state stores."""
        self._require(TransactionStatus.PREPARED)
        self._producer.commit_transaction(self._timeout_s)
        self.status = TransactionStatus.COMMITTED
        for store, writes in self._writes.items():
            if writes:
                store.write_batch(writes, self._last_changelog_offset[(store.changelog, store.partition)] + 1)

    def abort(self) -> None:
        """Abort: nothing produced becomes visible and the stores stay as they were."""
        if self.status in (TransactionStatus.COMMITTED, TransactionStatus.ABORTED):
            return
        self._producer.abort_transaction(self._timeout_s)
        self.status = TransactionStatus.ABORTED
        self._writes.clear()

    # -- internals ---------------------------------------------------------------------

    def _produce(self, topic: str, kwargs: dict[str, object]) -> None:
        while True:
            try:
                self._producer.produce(topic, **kwargs)
                break
            except BufferError:
                self._producer.poll(0.05)  # local queue full: serve deliveries, then retry
        self.records_produced += 1

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None and self._delivery_error is None:
            self._delivery_error = error

    def _on_changelog_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._on_delivery(error, message)
            return
        where, offset = (message.topic(), message.partition()), message.offset()
        if offset > self._last_changelog_offset.get(where, -1):
            self._last_changelog_offset[where] = offset

    def _require(self, status: TransactionStatus) -> None:
        if self.status is not status:
            raise TransactionStateError(f"transaction is {self.status.value}, needs {status.value}")
