"""The processor's transaction and staged store writes, and changelog restore, against the real broker."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import cast

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from processor.runtime import transaction as transaction_module
from processor.runtime.restore import (
    RestoreError,
    StoreAheadOfChangelog,
    restore_consumer_config,
    restore_store,
    written_end_consumer_config,
)
from processor.runtime.store import PartitionStore, StagedWrites
from processor.runtime.transaction import (
    KafkaTransaction,
    ProducerWedged,
    TransactionStateError,
    TransactionStatus,
    call_bounded,
)

pytestmark = pytest.mark.integration


class ProcessingTransaction:
    """What a task does with its stores around one Kafka transaction (processor.runtime.task.Task):
    raw writes staged per store, sent to the changelog at prepare, written to RocksDB after commit."""

    def __init__(self, producer: Producer) -> None:
        self.kafka = KafkaTransaction(producer)
        self._staged: dict[int, StagedWrites] = {}

    @property
    def status(self) -> TransactionStatus:
        return self.kafka.status

    def _for(self, store: PartitionStore) -> StagedWrites:
        return self._staged.setdefault(id(store), StagedWrites(store))

    def put(self, store: PartitionStore, key: bytes, value: bytes | None) -> None:
        if self.kafka.status is not TransactionStatus.OPEN:
            raise TransactionStateError(f"transaction is {self.kafka.status.value}")
        self._for(store).put(key, value)

    def get(self, store: PartitionStore, key: bytes) -> bytes | None:
        return self._for(store).get(key)

    def produce(self, topic: str, value: bytes, **kwargs) -> None:
        self.kafka.produce(topic, value, **kwargs)

    def prepare(self, offsets, group_metadata) -> None:
        for staged in self._staged.values():
            staged.produce_changelog(self.kafka)
        self.kafka.prepare(offsets, group_metadata)

    def commit(self) -> None:
        self.kafka.commit()
        for staged in self._staged.values():
            staged.apply()

    def abort(self) -> None:
        self.kafka.abort()
        for staged in self._staged.values():
            staged.discard()


@pytest.fixture
def producer(kafka_bootstrap: str) -> Producer:
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": f"t-{uuid.uuid4().hex}"})
    producer.init_transactions(30)
    return producer


@pytest.fixture
def restore_consumer(kafka_bootstrap: str) -> Consumer:
    consumer = Consumer(restore_consumer_config({"bootstrap.servers": kafka_bootstrap}))
    yield consumer
    consumer.close()


def read_committed(bootstrap: str, topic: str, partition: int = 0) -> list[tuple[bytes | None, bytes | None]]:
    consumer = Consumer(restore_consumer_config({"bootstrap.servers": bootstrap}))
    try:
        tp = TopicPartition(topic, partition)
        _, end = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
        consumer.assign([TopicPartition(topic, partition, 0)])
        records = []
        while consumer.position([tp])[0].offset < end:
            records.extend((m.key(), m.value()) for m in consumer.consume(100, timeout=1) if not m.error())
        return records
    finally:
        consumer.close()


def stores_for(tmp_path: Path, changelog: str, partitions: int) -> dict[int, PartitionStore]:
    return {p: PartitionStore(tmp_path / f"p{p}", changelog, p) for p in range(partitions)}


def test_commit_makes_outputs_visible_then_writes_stores_with_changelog_checkpoint(
    kafka_bootstrap: str, make_topic, producer: Producer, tmp_path: Path
) -> None:
    changelog = make_topic("changelog", partitions=2, config={"cleanup.policy": "compact"})
    output = make_topic("output")
    stores = stores_for(tmp_path, changelog, 2)

    txn = ProcessingTransaction(producer)
    txn.put(stores[0], b"a", b"1")
    txn.put(stores[1], b"b", b"2")
    txn.put(stores[0], b"a", b"3")  # a later write of the same key replaces the earlier one
    txn.produce(output, b"out", key=b"a")
    assert txn.get(stores[0], b"a") == b"3" and stores[0].get(b"a") is None
    txn.prepare([], None)
    txn.commit()

    assert txn.status is TransactionStatus.COMMITTED
    assert (stores[0].get(b"a"), stores[1].get(b"b")) == (b"3", b"2")
    assert read_committed(kafka_bootstrap, output) == [(b"a", b"out")]
    assert read_committed(kafka_bootstrap, changelog, 0) == [(b"a", b"3")]
    # Changelog offset 0 holds the record, 1 the commit marker: resume from 1.
    assert (stores[0].changelog_next_offset, stores[1].changelog_next_offset) == (1, 1)


def test_abort_leaves_stores_unchanged_and_outputs_invisible(
    kafka_bootstrap: str, make_topic, producer: Producer, tmp_path: Path
) -> None:
    changelog = make_topic("changelog", config={"cleanup.policy": "compact"})
    output = make_topic("output")
    stores = stores_for(tmp_path, changelog, 1)

    txn = ProcessingTransaction(producer)
    txn.put(stores[0], b"a", b"1")
    txn.produce(output, b"out")
    txn.prepare([], None)
    txn.abort()

    assert txn.status is TransactionStatus.ABORTED
    assert stores[0].get(b"a") is None and stores[0].changelog_next_offset == 0
    assert read_committed(kafka_bootstrap, output) == []
    with pytest.raises(TransactionStateError):
        txn.put(stores[0], b"a", b"2")


def test_restore_rebuilds_an_empty_store_and_skips_aborted_changelog_writes(
    kafka_bootstrap: str, make_topic, producer: Producer, restore_consumer: Consumer, tmp_path: Path
) -> None:
    changelog = make_topic("changelog", config={"cleanup.policy": "compact"})
    stores = stores_for(tmp_path / "original", changelog, 1)
    for index in range(3):
        txn = ProcessingTransaction(producer)
        txn.put(stores[0], f"k{index}".encode(), f"v{index}".encode())
        txn.put(stores[0], b"shared", f"s{index}".encode())
        txn.prepare([], None)
        txn.commit()
    aborted = ProcessingTransaction(producer)
    aborted.put(stores[0], b"k0", b"aborted")
    aborted.prepare([], None)
    aborted.abort()

    fresh = PartitionStore(tmp_path / "fresh", changelog, 0)
    result = restore_store(fresh, restore_consumer)

    assert result.from_offset == 0 and result.records_restored == 6
    assert {key: fresh.get(key) for key in (b"k0", b"k1", b"k2", b"shared")} == {
        b"k0": b"v0", b"k1": b"v1", b"k2": b"v2", b"shared": b"s2",
    }
    # The abort marker may land after the end was read: the store then resumes past it.
    assert fresh.changelog_next_offset >= result.end_offset
    again = restore_store(fresh, restore_consumer)
    assert again.records_restored == 0 and not again.store_rebuilt


def committed_then_open(producer: Producer, tmp_path: Path, changelog: str, late: bytes) -> ProcessingTransaction:
    """k0=v0 committed on the changelog, then a transaction writing late=`late`, prepared and left open."""
    writer = PartitionStore(tmp_path / "writer", changelog, 0)
    first = ProcessingTransaction(producer)
    first.put(writer, b"k0", b"v0")
    first.prepare([], None)
    first.commit()
    pending = ProcessingTransaction(producer)
    pending.put(writer, b"late", late)
    pending.prepare([], None)
    return pending


def test_restore_checkpoint_is_the_changelog_end_so_a_record_committed_there_later_is_restored(
    kafka_bootstrap: str, make_topic, producer: Producer, restore_consumer: Consumer, tmp_path: Path, written_end
) -> None:
    # librdkafka moves consumer.position() one past the EOF offset; a checkpoint taken from it
    # skipped the next record committed at the end (a lost state write after a crash).
    changelog = make_topic("changelog", config={"cleanup.policy": "compact"})
    # A transaction is open on the changelog while the store restores: the end is its first record.
    pending = committed_then_open(producer, tmp_path, changelog, b"committed after the restore")

    store = PartitionStore(tmp_path / "store", changelog, 0)
    result = restore_store(store, restore_consumer)
    assert result.records_restored == 1 and store.changelog_next_offset == result.end_offset

    pending.commit()
    # commit_transaction returns once the commit is decided; the coordinator writes the markers
    # after that, so the stable end may still be short of them: wait for it, as a processor does.
    tail = restore_store(store, restore_consumer, written_end=written_end)

    assert tail.from_offset == result.end_offset and tail.records_restored == 1
    assert store.get(b"late") == b"committed after the restore"


@pytest.fixture
def written_end(kafka_bootstrap: str):
    consumer = Consumer(written_end_consumer_config({"bootstrap.servers": kafka_bootstrap}))
    yield lambda tp: consumer.get_watermark_offsets(tp, timeout=10, cached=False)[1]
    consumer.close()


def test_restore_waits_for_a_transaction_open_on_the_changelog_and_keeps_its_writes_once_committed(
    kafka_bootstrap: str, make_topic, producer: Producer, restore_consumer: Consumer, written_end, tmp_path: Path
) -> None:
    # The previous owner's last commit, decided but with its markers not yet written, holds the
    # stable end below its records: a restore that stopped there would lose them for good.
    changelog = make_topic("changelog", config={"cleanup.policy": "compact"})
    pending = committed_then_open(producer, tmp_path, changelog, b"v1")
    committer = threading.Timer(1.0, pending.commit)
    committer.start()

    store = PartitionStore(tmp_path / "store", changelog, 0)
    result = restore_store(store, restore_consumer, written_end=written_end, settle_timeout_s=30)
    committer.join()

    assert result.records_restored == 2
    assert (store.get(b"k0"), store.get(b"late")) == (b"v0", b"v1")


def test_restore_gives_up_on_a_transaction_that_stays_open_past_the_settle_timeout(
    kafka_bootstrap: str, make_topic, producer: Producer, restore_consumer: Consumer, written_end, tmp_path: Path
) -> None:
    changelog = make_topic("changelog", config={"cleanup.policy": "compact"})
    stuck = committed_then_open(producer, tmp_path, changelog, b"never committed")
    try:
        with pytest.raises(RestoreError, match="a transaction has held the stable end"):
            restore_store(PartitionStore(tmp_path / "store", changelog, 0), restore_consumer,
                          written_end=written_end, settle_timeout_s=1.0)
    finally:
        stuck.abort()


def test_restore_refuses_a_store_that_claims_writes_its_changelog_does_not_have(
    make_topic, restore_consumer: Consumer, tmp_path: Path
) -> None:
    changelog = make_topic("changelog", config={"cleanup.policy": "compact"})
    store = PartitionStore(tmp_path / "store", changelog, 0)
    store.write_batch({b"k": b"v"}, 5)  # e.g. the changelog topic was recreated under it

    with pytest.raises(StoreAheadOfChangelog, match="past the changelog end 0"):
        restore_store(store, restore_consumer)


def test_restore_of_a_surviving_store_replays_only_the_changelog_tail(
    kafka_bootstrap: str, make_topic, producer: Producer, restore_consumer: Consumer, tmp_path: Path
) -> None:
    changelog = make_topic("changelog", config={"cleanup.policy": "compact"})
    survivor = PartitionStore(tmp_path / "survivor", changelog, 0)
    txn = ProcessingTransaction(producer)
    for index in range(50):
        txn.put(survivor, f"k{index}".encode(), b"old")
    txn.prepare([], None)
    txn.commit()
    checkpoint = survivor.changelog_next_offset
    # Another instance (or this one, before a crash) committed two more writes that the
    # surviving store never saw.
    elsewhere = PartitionStore(tmp_path / "elsewhere", changelog, 0)
    tail = ProcessingTransaction(producer)
    tail.put(elsewhere, b"k1", b"new")
    tail.put(elsewhere, b"k99", b"new")
    tail.prepare([], None)
    tail.commit()

    result = restore_store(survivor, restore_consumer)

    assert result.from_offset == checkpoint
    assert result.records_restored == 2
    assert (survivor.get(b"k1"), survivor.get(b"k99"), survivor.get(b"k2")) == (b"new", b"new", b"old")


class _ProducerWhoseSendOffsetsNeverReturns:
    """The calls KafkaTransaction makes; send_offsets_to_transaction blocks like librdkafka#5456."""

    def __init__(self) -> None:
        self.released = threading.Event()
        self.aborts = 0

    def begin_transaction(self) -> None:
        pass

    def flush(self, timeout: float) -> int:
        return 0

    def send_offsets_to_transaction(self, offsets: object, metadata: object, timeout: float) -> None:
        self.released.wait()

    def abort_transaction(self, timeout: float) -> None:
        self.aborts += 1


def test_transaction_whose_send_offsets_never_returns_fails_wedged_and_aborts_without_touching_the_producer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(transaction_module, "_WEDGED_GRACE_S", 0.2)
    producer = _ProducerWhoseSendOffsetsNeverReturns()
    txn = KafkaTransaction(cast(Producer, producer), timeout_s=0.1)
    try:
        started = time.monotonic()
        with pytest.raises(ProducerWedged, match="send_offsets_to_transaction did not return"):
            txn.prepare([TopicPartition("in", 0, 5)], object())
        assert time.monotonic() - started < 5
        assert txn.status is TransactionStatus.FAILED
        with pytest.raises(ProducerWedged):  # a producer inside a transactional call may not abort: replace it
            txn.abort()
        assert producer.aborts == 0
    finally:
        producer.released.set()


def test_bounded_call_raises_the_calls_own_error_and_returns_when_it_does() -> None:
    with pytest.raises(KafkaException, match="refused"):
        call_bounded("commit", lambda: (_ for _ in ()).throw(KafkaException("refused")), 1.0)
    call_bounded("commit", lambda: None, 1.0)
