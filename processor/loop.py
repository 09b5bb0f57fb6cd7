"""The exactly-once consume -> fold -> produce loop.

One consumer (classic group protocol, range assignor, `read_committed`) and one transactional
producer per instance. Records are consumed in batches and handed to the topology; a
transaction stays open until the commit interval has passed or the consumer has caught up,
whichever comes first, so latency is low when traffic is light and batches are large when it
is heavy. Partitions are restored from their changelogs inside the assignment callback,
before any of their records is processed; an open transaction is committed before partitions
are revoked.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from processor.metrics import ProcessorMetrics
from processor.restore import StoreAheadOfChangelog, restore_store
from processor.state_store import PartitionStore
from processor.transaction import ProcessingTransaction

log = logging.getLogger(__name__)

_LAG_REPORT_INTERVAL_S = 2.0


@dataclass(frozen=True, slots=True)
class Subtopology:
    """Input topics that share a key space, partition count and state store.

    Partition p of every input topic of a subtopology is assigned to the same instance (range
    assignor over equally partitioned topics), and its state lives in store (name, p), whose
    changelog is partition p of `changelog_topic`.
    """

    name: str
    input_topics: tuple[str, ...]
    changelog_topic: str


class Topology(Protocol):
    """What the loop drives: the service's record handlers and their cached state."""

    subtopologies: Sequence[Subtopology]

    def handle(self, message: Message, store: PartitionStore, txn: ProcessingTransaction) -> None:
        """Fold one input record; raise to send it to the dead-letter topic."""

    def dead_letter(self, message: Message, error: BaseException, txn: ProcessingTransaction) -> None:
        """Publish `message` to the dead-letter topic with the reason `error` gives."""

    def record_done(self) -> None:
        """The record was handled in full: keep its state changes."""

    def record_failed(self) -> None:
        """Handling the record failed part-way: undo its cached state changes."""

    def before_prepare(self, txn: ProcessingTransaction) -> None:
        """Write cached state back into the transaction."""

    def after_commit(self) -> None: ...

    def after_abort(self) -> None:
        """Forget cached state that the aborted transaction had changed."""

    def stores_closed(self, stores: Iterable[PartitionStore]) -> None:
        """Forget cached state of stores no longer assigned here."""


@dataclass(frozen=True, slots=True)
class LoopSettings:
    state_dir: Path
    batch_size: int = 500
    commit_interval_s: float = 0.1
    poll_timeout_s: float = 0.05
    transaction_timeout_s: float = 30.0


class ProcessorLoop:
    def __init__(
        self,
        *,
        consumer: Consumer,
        producer: Producer,
        restore_consumer: Consumer,
        topology: Topology,
        settings: LoopSettings,
        metrics: ProcessorMetrics,
        changelog_written_end: Callable[[TopicPartition], int] | None = None,
    ) -> None:
        self._consumer = consumer
        self._producer = producer
        self._restore_consumer = restore_consumer
        self._changelog_written_end = changelog_written_end
        self._topology = topology
        self._settings = settings
        self._metrics = metrics
        self._subtopology_of: dict[str, Subtopology] = {
            topic: sub for sub in topology.subtopologies for topic in sub.input_topics
        }
        self._stores: dict[tuple[str, int], PartitionStore] = {}
        self._txn: ProcessingTransaction | None = None
        self._txn_started = 0.0
        self._txn_records = 0
        self._next_offsets: dict[tuple[str, int], int] = {}
        self.assignment_ready = False
        self.last_loop_at = time.monotonic()
        self.restored: list[tuple[str, int, int]] = []  # (store, partition, records) per restore
        self._lag_reported_at = 0.0
        self._rebalances = 0  # assignment changes seen; tells a batch whether it spans one

    # -- public ------------------------------------------------------------------------

    def run(self, should_stop: Callable[[], bool]) -> None:
        topics = sorted(self._subtopology_of)
        self._consumer.subscribe(
            topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        try:
            while not should_stop():
                self.last_loop_at = time.monotonic()
                messages = self._next_batch()
                if messages:
                    self._process(messages)
                if self._txn is not None and (
                    len(messages) < self._settings.batch_size
                    or time.monotonic() - self._txn_started >= self._settings.commit_interval_s
                ):
                    self._commit()
                if self.last_loop_at - self._lag_reported_at >= _LAG_REPORT_INTERVAL_S:
                    self._report_lag()
        finally:
            if self._txn is not None:
                self._commit()
            self._consumer.close()  # revokes (nothing open to commit) and leaves the group
            self._close_stores(list(self._stores))
            self._producer.flush(10)
            # Drop the clients: librdkafka's threads end when the handles are collected.
            del self._producer, self._consumer, self._restore_consumer

    # -- processing --------------------------------------------------------------------

    def _next_batch(self) -> list[Message]:
        """Up to batch_size records, without waiting for more once one is there.

        `consume(n, timeout)` waits until it has n records or the timeout passes: under light
        load every record would wait out the poll timeout before it is even folded. So take
        what is queued; if nothing is, wait for the first record only, then take what came with it.
        """
        size = self._settings.batch_size
        messages = self._consumer.consume(size, timeout=0)
        if not messages:
            messages = self._consumer.consume(1, timeout=self._settings.poll_timeout_s)
            if messages and size > 1:
                rebalances = self._rebalances
                more = self._consumer.consume(size - 1, timeout=0)
                if self._rebalances != rebalances:
                    # The rebalance was served between the two calls: the first record predates it
                    # (librdkafka only drops stale records within one call). Eager rebalancing reset
                    # every position to the committed offsets, so it is fetched again by its owner.
                    return more
                messages.extend(more)
        return messages

    def _process(self, messages: list[Message]) -> None:
        if self._txn is None:
            self._txn = ProcessingTransaction(self._producer, timeout_s=self._settings.transaction_timeout_s)
            self._txn_started = time.monotonic()
            self._txn_records = 0
        txn = self._txn
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error: %s", error)
                    if error.fatal():
                        raise KafkaException(error)
                continue
            topic, partition = message.topic(), message.partition()
            store = self._stores.get((self._subtopology_of[topic].name, partition))
            if store is None:  # its partition was revoked after it was fetched: the owner refetches it
                log.warning("skipping %s[%d]@%d: partition no longer assigned", topic, partition, message.offset())
                continue
            txn.begin_record()
            try:
                self._topology.handle(message, store, txn)
            except Exception as handling_error:  # bad input never stops the processor
                # All of the record's effects or none: dead-lettered, it leaves no trace but that.
                txn.rollback_record()
                self._topology.record_failed()
                self._topology.dead_letter(message, handling_error, txn)
            else:
                txn.end_record()
                self._topology.record_done()
            self._next_offsets[(topic, partition)] = message.offset() + 1
            self._metrics.records_processed.labels(topic).inc()
            self._txn_records += 1

    def _commit(self) -> None:
        txn, self._txn = self._txn, None
        assert txn is not None
        started = time.monotonic()
        offsets = [TopicPartition(t, p, o) for (t, p), o in self._next_offsets.items()]
        try:
            self._topology.before_prepare(txn)
            txn.prepare(offsets, self._consumer.consumer_group_metadata())
            txn.commit()
        except KafkaException as error:
            kafka_error = error.args[0] if error.args else None
            if isinstance(kafka_error, KafkaError) and kafka_error.txn_requires_abort():
                self._abort_and_rewind(txn, str(kafka_error))
                return
            raise  # fatal (e.g. fenced by a newer instance): let the process restart
        self._next_offsets.clear()
        self._topology.after_commit()
        self._metrics.batch_size.observe(self._txn_records)
        self._metrics.commit_latency_ms.observe((time.monotonic() - started) * 1000)

    def _abort_and_rewind(self, txn: ProcessingTransaction, reason: str) -> None:
        log.warning("aborting transaction and reprocessing its inputs: %s", reason)
        txn.abort()
        self._topology.after_abort()
        self._metrics.transactions_aborted.inc()
        self._next_offsets.clear()
        assignment = self._consumer.assignment()
        if assignment:
            for position in self._consumer.committed(assignment, timeout=30):
                self._consumer.seek(
                    TopicPartition(position.topic, position.partition, max(position.offset, 0))
                    if position.offset >= 0
                    else TopicPartition(position.topic, position.partition, -2)  # OFFSET_BEGINNING
                )

    def _report_lag(self) -> None:
        self._lag_reported_at = time.monotonic()
        assignment = self._consumer.assignment()
        if not assignment:
            return
        for position in self._consumer.position(assignment):
            _, high = self._consumer.get_watermark_offsets(position, cached=True)
            if position.offset >= 0 and high >= 0:
                self._metrics.consumer_lag.labels(position.topic, str(position.partition)).set(
                    max(high - position.offset, 0)
                )

    # -- rebalancing -------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._rebalances += 1
        self.assignment_ready = False
        for name, partition in sorted({(self._subtopology_of[tp.topic].name, tp.partition) for tp in partitions}):
            if (name, partition) not in self._stores:
                self._open_and_restore(name, partition)
        self._metrics.assigned_partitions.set(len(partitions))
        self.assignment_ready = True

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._rebalances += 1
        self.assignment_ready = False
        if self._txn is not None:
            self._commit()  # the generation is still ours: finish the work done so far
        self._close_stores(self._store_keys(partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._rebalances += 1
        self.assignment_ready = False
        if self._txn is not None:  # another instance owns these now: our work must not land
            txn, self._txn = self._txn, None
            self._abort_and_rewind(txn, "partitions lost")
        self._close_stores(self._store_keys(partitions))

    def _store_keys(self, partitions: Iterable[TopicPartition]) -> list[tuple[str, int]]:
        return sorted({(self._subtopology_of[tp.topic].name, tp.partition) for tp in partitions})

    def _open_and_restore(self, name: str, partition: int) -> None:
        sub = next(s for s in self._topology.subtopologies if s.name == name)
        path = self._settings.state_dir / name / str(partition)
        path.parent.mkdir(parents=True, exist_ok=True)
        store = PartitionStore(path, sub.changelog_topic, partition)

        def progress(p: int, position: int, end: int) -> None:
            self._metrics.restore_remaining.labels(name, str(p)).set(max(end - position, 0))

        try:
            result = restore_store(
                store, self._restore_consumer, on_progress=progress, written_end=self._changelog_written_end
            )
        except StoreAheadOfChangelog as error:
            log.warning("store %s/%d inconsistent with its changelog (%s); rebuilding", name, partition, error)
            store.reset()
            result = restore_store(
                store, self._restore_consumer, on_progress=progress, written_end=self._changelog_written_end
            )
        self._stores[(name, partition)] = store
        self._metrics.restore_remaining.labels(name, str(partition)).set(0)
        self._metrics.restored_records.labels(name).inc(result.records_restored)
        self.restored.append((name, partition, result.records_restored))
        log.info(
            "restored store %s/%d: %d changelog records from offset %d to %d in %.2fs%s",
            name, partition, result.records_restored, result.from_offset, result.end_offset,
            result.seconds, " (rebuilt)" if result.store_rebuilt else "",
        )

    def _close_stores(self, keys: Iterable[tuple[str, int]]) -> None:
        closed = [self._stores.pop(key) for key in keys if key in self._stores]
        self._topology.stores_closed(closed)
        for store in closed:
            store.close()
