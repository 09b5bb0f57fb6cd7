"""Bring a partition's state store up to date from its compacted changelog.

Runs before a newly assigned partition is processed. The store remembers the first changelog
offset it has not seen, so a store that survived a restart replays only the tail; a new or
rebuilt store replays the whole (compacted) changelog. The end is the changelog's last stable
offset, read with `read_committed`, so aborted writes are never restored.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from confluent_kafka import Consumer, KafkaError, TopicPartition

from kafka_client.records import coordinates
from kafka_client.settings import ClientConfig
from processor.runtime.store import PartitionStore

_FLUSH_EVERY = 5_000  # records per RocksDB write batch while restoring


class RestoreError(RuntimeError):
    """The changelog could not be read to its end in time."""


class StoreAheadOfChangelog(RestoreError):
    """The store claims writes its changelog does not have: rebuild it from the changelog."""


@dataclass(frozen=True, slots=True)
class RestoreResult:
    partition: int
    from_offset: int
    end_offset: int
    records_restored: int
    store_rebuilt: bool
    seconds: float


def written_end_consumer_config(base: ClientConfig) -> ClientConfig:
    """A consumer used only for `read_uncommitted` high watermarks (`restore_store(written_end=...)`)."""
    return {**restore_consumer_config(base), "isolation.level": "read_uncommitted"}


def restore_consumer_config(base: ClientConfig) -> ClientConfig:
    """A consumer that only ever uses assign(): no group membership, no commits."""
    return {
        **base,
        "group.id": "state-restore-unused",  # required by librdkafka; never joined (assign only)
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "isolation.level": "read_committed",
        # EOF events end the wait as soon as the fetch reaches the end (past commit markers).
        "enable.partition.eof": True,
        "fetch.max.bytes": 64 * 1024 * 1024,
        # At the end of a changelog the broker has nothing more to send; do not let it wait.
        "fetch.wait.max.ms": 10,
    }


def _settled_end(
    consumer: Consumer, partition: TopicPartition, written: int, watermarks: tuple[int, int], timeout_s: float
) -> tuple[int, int]:
    """(low, stable end) once the stable end has reached `written` (transactions decided)."""
    deadline = time.monotonic() + timeout_s
    low, end = watermarks
    while end < written:
        if time.monotonic() > deadline:
            raise RestoreError(
                f"{partition.topic}[{partition.partition}]: a transaction has held the stable end at {end} "
                f"(written up to {written}) for more than {timeout_s:.0f}s"
            )
        time.sleep(0.02)
        low, end = consumer.get_watermark_offsets(partition, timeout=30, cached=False)
    return low, end


def restore_store(
    store: PartitionStore,
    consumer: Consumer,
    *,
    timeout_s: float = 300.0,
    on_progress: Callable[[int, int, int], None] | None = None,
    written_end: Callable[[TopicPartition], int] | None = None,
    settle_timeout_s: float = 60.0,
) -> RestoreResult:
    """Replay the changelog from the store's checkpoint to its end.

    `written_end` gives the changelog's end including records of open transactions (a
    `read_uncommitted` high watermark). With it, the restore first waits until no transaction
    that was open at the start still holds the stable end below that point: the previous owner's
    last commit may be decided with its markers not yet written, and a store restored without
    those writes would lose them for good once its own first commit moves the checkpoint on.
    """
    started = time.monotonic()
    partition = TopicPartition(store.changelog, store.partition)
    low, end = consumer.get_watermark_offsets(partition, timeout=30, cached=False)
    if written_end is not None:
        low, end = _settled_end(consumer, partition, written_end(partition), (low, end), settle_timeout_s)
    start = max(store.changelog_next_offset, low)
    if start > end:
        # The store claims writes the changelog does not have (e.g. the topic was recreated):
        # the changelog is the source of truth, so start again from it.
        raise StoreAheadOfChangelog(
            f"store of {store.changelog}[{store.partition}] is at {start}, past the changelog end {end}"
        )
    restored = 0
    if start < end:
        consumer.assign([TopicPartition(store.changelog, store.partition, start)])
        pending: dict[bytes, bytes | None] = {}
        position = start
        deadline = started + timeout_s
        try:
            while position < end:
                if time.monotonic() > deadline:
                    raise RestoreError(
                        f"restoring {store.changelog}[{store.partition}] stalled at {position} of {end}"
                    )
                for message in consumer.consume(5_000, timeout=0.05):
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            # The EOF event's offset is the end the fetch reached (past commit
                            # markers and aborted records). Not consumer.position(): librdkafka
                            # moves that one past the EOF offset, and a checkpoint one too far
                            # would skip the next record written at the end.
                            position = max(position, coordinates(message)[2])
                            continue
                        raise RestoreError(f"changelog read failed: {error}")
                    pending[cast(bytes, message.key())] = message.value()
                    restored += 1
                    position = coordinates(message)[2] + 1
                if len(pending) >= _FLUSH_EVERY or position >= end:
                    store.write_batch(pending, position)
                    pending = {}
                    if on_progress is not None:
                        on_progress(store.partition, position, end)
        finally:
            consumer.unassign()
    return RestoreResult(
        partition=store.partition,
        from_offset=start,
        end_offset=end,
        records_restored=restored,
        store_rebuilt=store.rebuilt,
        seconds=time.monotonic() - started,
    )
