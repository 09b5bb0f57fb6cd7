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

No input can stop a partition: when the producer or the broker refuses a record an input caused
(too large, invalid), the transaction is aborted, the input is remembered as poisoned, the inputs
are refetched from the committed offsets, and the poisoned one is dead-lettered instead of
handled (its effects never land); if even its dead letter is refused, a minimal one (no original
value or headers) goes instead. A failure that is not the input's (the broker away, a timeout)
aborts and retries; if the transaction cannot even be aborted, or a producer call did not keep
its own timeout (`ProducerWedged`: librdkafka's send_offsets_to_transaction after a broker
restart), the producer is replaced (its successor's `init_transactions` fences and aborts the old
transaction once the broker is back), with every wait bounded and the stop flag checked in
between, so SIGTERM is always honoured.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from kafka_client.records import coordinates
from processor.metrics import ProcessorMetrics
from processor.runtime.positions import ReadPositions
from processor.runtime.state_manager import StateManager
from processor.runtime.task import Coordinates, OutputRefused, Task
from processor.runtime.transaction import KafkaTransaction, TransactionStatus

log = logging.getLogger(__name__)

_LAG_REPORT_INTERVAL_S = 2.0


@dataclass(frozen=True, slots=True)
class LoopSettings:
    batch_size: int = 500
    commit_interval_s: float = 0.1
    poll_timeout_s: float = 0.05
    transaction_timeout_s: float = 30.0
    recovery_attempt_s: float = 5.0  # each wait for the broker while recovering (the stop flag is checked between)


@dataclass
class _Poisoned:
    reason: str
    attempts: int = 1  # 1: dead-letter it whole; 2: its dead letter was refused too, send a minimal one
    where: Coordinates = field(default=("", 0, 0))


class StreamLoop:
    def __init__(
        self,
        *,
        consumer: Consumer,
        producer: Producer,
        state: StateManager,
        settings: LoopSettings,
        metrics: ProcessorMetrics,
        new_producer: Callable[[], Producer] | None = None,
        positions: ReadPositions | None = None,
    ) -> None:
        self._consumer = consumer
        self._positions = positions or ReadPositions()  # how far each input partition was read (tasks ask)
        self._producer: Producer | None = producer  # None only while _replace_producer replaces it
        self._new_producer = new_producer  # a fresh transactional producer (same transactional.id)
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
        self._poisoned: dict[Coordinates, _Poisoned] = {}  # inputs to dead-letter instead of handling
        self._should_stop: Callable[[], bool] = lambda: False
        self.unavailable_since: float | None = None  # the broker has not let a transaction complete since

    @property
    def healthy(self) -> bool:
        """False once transactions have been failing for 30 s (the broker away, or stuck)."""
        return self.unavailable_since is None or time.monotonic() - self.unavailable_since < 30.0

    # -- public ------------------------------------------------------------------------

    def run(self, should_stop: Callable[[], bool]) -> None:
        self._should_stop = should_stop
        self._consumer.subscribe(
            self._state.input_topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        try:
            while not should_stop():
                self.last_loop_at = time.monotonic()
                messages = self._next_batch()
                self._positions.new_batch()  # end offsets asked from here on bound what this batch read
                if messages:
                    self._process(messages)
                self._punctuate()
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
            if self._producer is not None:  # None: stopped while replacing it
                self._producer.flush(5)
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
                more: list[Message] = self._consumer.consume(size - 1, timeout=0)
                if self._rebalances != rebalances:
                    # The rebalance was served between the two calls: the first record predates it
                    # (librdkafka only drops stale records within one call). Eager rebalancing reset
                    # every position to the committed offsets, so it is fetched again by its owner.
                    return more
                messages.extend(more)
        return messages

    def _open_transaction(self) -> KafkaTransaction:
        if self._txn is None:
            if self._producer is None:  # _replace_producer sets a new one or raises
                raise RuntimeError("no transactional producer")
            self._txn = KafkaTransaction(self._producer, timeout_s=self._settings.transaction_timeout_s)
            self._txn_started = time.monotonic()
            self._txn_records = 0
        return self._txn

    def _process(self, messages: list[Message]) -> None:
        txn: KafkaTransaction | None = self._txn
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:  # read to its end (no transaction needed)
                    self._positions.advanced(message.topic() or "", message.partition() or 0, message.offset() or 0)
                    continue
                log.warning("consumer error: %s", error)
                if error.fatal():
                    raise KafkaException(error)
                if error.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
                    self._broker_trouble(str(error))
                continue
            if txn is None:
                txn = self._open_transaction()
            where = coordinates(message)
            topic, partition, offset = where
            task = self._state.task_for(topic, partition)
            if task is None:  # its partition was revoked after it was fetched: the owner refetches it
                log.warning("skipping %s[%d]@%d: partition no longer assigned", topic, partition, offset)
                continue
            self._touched[id(task)] = task
            poisoned = self._poisoned.get(where)
            try:
                if poisoned is None:
                    task.process(message, txn)
                else:
                    task.skip(message, txn, OutputRefused(where, poisoned.reason), minimal=poisoned.attempts > 1)
            except OutputRefused as refused:  # refused at once: nothing of it may land; redo without it
                self._poison({refused.where: refused.reason})
                return
            self._next_offsets[(topic, partition)] = offset + 1
            self._positions.advanced(topic, partition, offset + 1)
            self._metrics.records_processed.labels(topic).inc()
            self._txn_records += 1

    def _punctuate(self) -> None:
        """Work the tasks do without an input record (e.g. admissions that waited for a read). An
        output refused at once: abort and redo, where the task abandons that work instead."""
        for task in self._state.tasks():
            try:
                if task.punctuate(self._open_transaction):
                    self._touched[id(task)] = task
            except OutputRefused as refused:
                self._touched[id(task)] = task
                self._poison({refused.where: refused.reason})
                return

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
            refused = {where: reason for task in tasks for where, reason in task.refused().items()}
            if refused:  # the broker refused records some inputs caused: redo without them
                self._touched = {id(task): task for task in tasks}
                self._txn = txn
                self._poison(refused)
                return
            kafka_error = error.args[0] if error.args else None
            if isinstance(kafka_error, KafkaError) and kafka_error.fatal():
                raise  # e.g. fenced by a newer instance with our transactional.id: let the process end
            self._broker_trouble(str(kafka_error or error))
            self._abort_and_rewind(txn, tasks, str(kafka_error or error))
            return
        self._next_offsets.clear()
        for task in tasks:
            task.post_commit()
        self._broker_fine()
        self._metrics.batch_size.observe(self._txn_records)
        self._metrics.commit_latency_ms.observe((time.monotonic() - started) * 1000)

    def _poison(self, refused: dict[Coordinates, str]) -> None:
        """Remember inputs whose outputs were refused, abort, and redo from the committed offsets."""
        for where, reason in refused.items():
            known = self._poisoned.get(where)
            if known is not None and known.attempts >= 2:
                raise RuntimeError(f"{where[0]}[{where[1]}]@{where[2]}: even a minimal dead letter was refused "
                                   f"({reason}); check the dead-letter topic's max.message.bytes")
            self._poisoned[where] = _Poisoned(reason, 1 if known is None else known.attempts + 1, where)
            if where[0].startswith("punctuation:"):  # Task.punctuate: abandoned in the redone transaction
                log.warning("%s of partition %d is abandoned: its output was refused: %s", where[0], where[1], reason)
            else:
                log.warning("input %s[%d]@%d is dead-lettered instead of handled: %s", *where, reason)
        txn, self._txn = self._txn, None
        tasks, self._touched = list(self._touched.values()), {}
        if txn is not None:
            self._abort_and_rewind(txn, tasks, "outputs refused")

    def _abort_and_rewind(self, txn: KafkaTransaction, tasks: list[Task], reason: str) -> None:
        log.warning("aborting transaction and reprocessing its inputs: %s", reason)
        for task in tasks:
            task.abort()
        self._metrics.transactions_aborted.inc()
        self._next_offsets.clear()
        try:
            if txn.status is not TransactionStatus.ABORTED:
                txn.abort()
        except KafkaException as error:
            kafka_error = error.args[0] if error.args else None
            if isinstance(kafka_error, KafkaError) and kafka_error.fatal():
                raise
            log.warning("could not abort the transaction (%s); replacing the producer", error)
            self._replace_producer()
        self._rewind()

    def _rewind(self) -> None:
        """Back to the committed offsets of every assigned partition (bounded retries while the broker is away)."""
        self._positions.forget_all()  # what was read past the committed offsets is read again
        while True:
            assignment = self._consumer.assignment()
            if not assignment:
                return
            try:
                committed = self._consumer.committed(assignment, timeout=self._settings.recovery_attempt_s)
            except KafkaException as error:
                self._broker_trouble(f"cannot read committed offsets: {error}")
                if self._should_stop():
                    return
                continue
            for position in committed:
                self._consumer.seek(
                    TopicPartition(position.topic, position.partition, max(position.offset, 0))
                    if position.offset >= 0
                    else TopicPartition(position.topic, position.partition, -2)  # OFFSET_BEGINNING
                )
            return

    def _replace_producer(self) -> None:
        """A new producer with the same transactional.id: its init_transactions fences the old one and
        aborts its transaction once the broker answers. Each attempt is bounded; stop is honoured."""
        if self._new_producer is None:
            raise RuntimeError("the transaction could not be aborted and no producer factory was given")
        old, self._producer = self._producer, None
        try:
            if old is not None:
                old.purge(in_queue=True, in_flight=True)
        except Exception as error:  # the old handle is dropped either way
            log.debug("purge of the replaced producer failed: %s", error)
        del old
        while not self._should_stop():
            producer = self._new_producer()
            try:
                producer.init_transactions(self._settings.recovery_attempt_s)
            except KafkaException as error:
                kafka_error = error.args[0] if error.args else None
                if isinstance(kafka_error, KafkaError) and kafka_error.fatal():
                    raise
                self._broker_trouble(f"init_transactions: {error}")
                del producer
                continue
            self._producer = producer
            log.info("transactional producer replaced; the broker is reachable again")
            return
        raise SystemExit(1)  # stopping while the broker is away: nothing of the open work landed

    def _broker_trouble(self, reason: str) -> None:
        now = time.monotonic()
        if self.unavailable_since is None:
            self.unavailable_since = now
            log.warning("transactions are failing (%s); retrying", reason)
        self.last_loop_at = now  # the loop is alive, just waiting for the broker (healthy says the rest)
        self._metrics.broker_unavailable_seconds.set(now - self.unavailable_since)

    def _broker_fine(self) -> None:
        if self.unavailable_since is not None:
            log.info("transactions complete again after %.1fs", time.monotonic() - self.unavailable_since)
            self.unavailable_since = None
            self._metrics.broker_unavailable_seconds.set(0)

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
        for (store, partition), size in self._state.cache_bytes().items():
            self._metrics.cache_bytes.labels(store, str(partition)).set(size)
        if self.unavailable_since is not None and self._txn is None:
            try:  # idle while the broker was away: is it back? (a commit says so when there is traffic)
                self._consumer.list_topics(timeout=1)
            except KafkaException:
                self._broker_trouble("metadata request failed")
            else:
                self._broker_fine()
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
        self._positions.forget(partitions)
        self._state.on_partition_revoke(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._rebalances += 1
        self.assignment_ready = False
        if self._txn is not None:  # another instance owns these now: our work must not land
            txn, self._txn = self._txn, None
            tasks, self._touched = list(self._touched.values()), {}
            self._abort_and_rewind(txn, tasks, "partitions lost")
        self._positions.forget(partitions)
        self._state.on_partition_lost(partitions)
