"""The exactly-once consume -> process -> produce loop: polls, batches, dispatches, commits.

One consumer (classic group protocol, range assignor, `read_committed`) and one transactional
producer per instance. Records are consumed in batches and each is handed to the task of its
partition (`StateManager.task_for`). A transaction stays open until the commit interval has
passed or the consumer has caught up, whichever comes first, so latency is low when traffic is
light and batches are large when it is heavy. A commit asks every task the transaction touched
to prepare (changelog records into the transaction), commits the transaction with the consumed
offsets, then lets the tasks write their stores.

Rebalances: before partitions are revoked the open transaction is committed (the generation is
still ours); when partitions are lost it is aborted and positions rewound. Opening, restoring and
closing tasks is the `StateManager`'s job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from kafka_client.records import coordinates
from processor.metrics import ProcessorMetrics
from processor.runtime.state_manager import StateManager
from processor.runtime.task import Task
from processor.runtime.transaction import KafkaTransaction

log = logging.getLogger(__name__)

_LAG_REPORT_INTERVAL_S = 2.0


@dataclass(frozen=True, slots=True)
class LoopSettings:
    batch_size: int = 500
    commit_interval_s: float = 0.1
    poll_timeout_s: float = 0.05
    transaction_timeout_s: float = 30.0


class StreamLoop:
    def __init__(
        self,
        *,
        consumer: Consumer,
        producer: Producer,
        state: StateManager,
        settings: LoopSettings,
        metrics: ProcessorMetrics,
    ) -> None:
        self._consumer = consumer
        self._producer = producer
        self._state = state
        self._settings = settings
        self._metrics = metrics
        self._txn: KafkaTransaction | None = None
        self._txn_started = 0.0
        self._txn_records = 0
        self._touched: dict[int, Task] = {}  # tasks that processed records in the open transaction
        self._next_offsets: dict[tuple[str, int], int] = {}
        self.assignment_ready = False
        self.last_loop_at = time.monotonic()
        self._lag_reported_at = 0.0
        self._rebalances = 0  # assignment changes seen; tells a batch whether it spans one

    # -- public ------------------------------------------------------------------------

    def run(self, should_stop: Callable[[], bool]) -> None:
        self._consumer.subscribe(
            self._state.input_topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
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
        except BaseException:
            self._abandon()  # whatever failed, the open transaction's work must not land
            raise
        else:
            if self._txn is not None:
                self._commit()
        finally:
            self._consumer.close()  # revokes (nothing open to commit) and leaves the group
            self._state.close()
            self._producer.flush(10)
            # Drop the clients: librdkafka's threads end when the handles are collected.
            del self._producer, self._consumer

    # -- processing --------------------------------------------------------------------

    def _next_batch(self) -> list[Message]:
        """Up to batch_size records, without waiting for more once one is there.

        `consume(n, timeout)` waits until it has n records or the timeout passes: under light
        load every record would wait out the poll timeout before it is even folded. So take
        what is queued; if nothing is, wait for the first record only, then take what came with it.
        """
        size = self._settings.batch_size
        messages: list[Message] = self._consumer.consume(size, timeout=0)
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
            self._txn = KafkaTransaction(self._producer, timeout_s=self._settings.transaction_timeout_s)
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
            topic, partition, offset = coordinates(message)
            task = self._state.task_for(topic, partition)
            if task is None:  # its partition was revoked after it was fetched: the owner refetches it
                log.warning("skipping %s[%d]@%d: partition no longer assigned", topic, partition, offset)
                continue
            task.process(message, txn)
            self._touched[id(task)] = task
            self._next_offsets[(topic, partition)] = offset + 1
            self._metrics.records_processed.labels(topic).inc()
            self._txn_records += 1

    def _commit(self) -> None:
        txn, self._txn = self._txn, None
        assert txn is not None
        tasks, self._touched = list(self._touched.values()), {}
        started = time.monotonic()
        offsets = [TopicPartition(t, p, o) for (t, p), o in self._next_offsets.items()]
        try:
            for task in tasks:
                task.prepare_commit(txn)
            txn.prepare(offsets, self._consumer.consumer_group_metadata())
            txn.commit()
        except KafkaException as error:
            kafka_error = error.args[0] if error.args else None
            if isinstance(kafka_error, KafkaError) and kafka_error.txn_requires_abort():
                self._abort_and_rewind(txn, tasks, str(kafka_error))
                return
            raise  # fatal (e.g. fenced by a newer instance): let the process restart
        self._next_offsets.clear()
        for task in tasks:
            task.post_commit()
        self._metrics.batch_size.observe(self._txn_records)
        self._metrics.commit_latency_ms.observe((time.monotonic() - started) * 1000)

    def _abort_and_rewind(self, txn: KafkaTransaction, tasks: list[Task], reason: str) -> None:
        log.warning("aborting transaction and reprocessing its inputs: %s", reason)
        txn.abort()
        for task in tasks:
            task.abort()
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

    def _abandon(self) -> None:
        txn, self._txn = self._txn, None
        tasks, self._touched = list(self._touched.values()), {}
        for task in tasks:
            task.abort()
        if txn is not None:
            try:
                txn.abort()
            except Exception as error:  # the process is stopping: the broker aborts it on timeout anyway
                log.warning("could not abort the open transaction while stopping: %s", error)

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
        self._state.on_partition_assign(partitions)
        self._metrics.assigned_partitions.set(len(partitions))
        self.assignment_ready = True

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._rebalances += 1
        self.assignment_ready = False
        if self._txn is not None:
            self._commit()  # the generation is still ours: finish the work done so far
        self._state.on_partition_revoke(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._rebalances += 1
        self.assignment_ready = False
        if self._txn is not None:  # another instance owns these now: our work must not land
            txn, self._txn = self._txn, None
            tasks, self._touched = list(self._touched.values()), {}
            self._abort_and_rewind(txn, tasks, "partitions lost")
        self._state.on_partition_lost(partitions)
