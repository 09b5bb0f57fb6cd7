"""How far this instance has read each input partition, for work that must wait until a
partition has been read to a given offset (`task.InputPositions`).

The loop moves a partition's position forward as it hands records to tasks (the next offset) and
as the consumer reports reaching a partition's end (`enable.partition.eof`: the offset reported
is where the next record would be, past any transaction markers, so a partition with nothing new
since it was assigned is known to be read too). Every way a position changes:

- a record handed to its task: `advanced(topic, partition, offset + 1)`;
- the consumer reached the partition's end: `advanced(topic, partition, end)`;
- partitions revoked or lost: `forget(partitions)` (their next owner reads them again);
- an aborted transaction rewinds every partition to its committed offset: `forget_all()`
  (what was read past it is read again, and the records' effects were discarded).

Positions only move forward between those resets: `advanced` keeps the larger offset.

End offsets are asked of the broker (a blocking request, 2 s at most) once per partition per
batch: any end asked after a batch was consumed bounds what was written before each of its
records, and asking once keeps a batch of many such records from waiting on many round trips
inside its transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from confluent_kafka import KafkaException, TopicPartition

log = logging.getLogger(__name__)


class ReadPositions:
    def __init__(self, end_offset: Callable[[TopicPartition], int] | None = None) -> None:
        self._read: dict[tuple[str, int], int] = {}
        self._ends: dict[tuple[str, int], int | None] = {}  # asked during the current batch
        # The broker's end offset of a partition (a blocking request): its high watermark, which a
        # read_committed consumer's end-of-partition offset equals once every transaction before it
        # is decided (behind one still open it stays at the last stable offset). Pinned against the
        # real broker by test_create_for_an_unknown_version_behind_an_open_transaction_is_not_found_once_it_ends.
        self._end_offset = end_offset

    def advanced(self, topic: str, partition: int, next_offset: int) -> None:
        key = (topic, partition)
        if next_offset > self._read.get(key, -1):
            self._read[key] = next_offset

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            self._read.pop((tp.topic, tp.partition), None)

    def forget_all(self) -> None:
        self._read.clear()

    def new_batch(self) -> None:
        """A batch was consumed: end offsets asked before it no longer bound what it holds."""
        self._ends.clear()

    # -- task.InputPositions ----------------------------------------------------------------

    def read_to(self, topic: str, partition: int) -> int | None:
        return self._read.get((topic, partition))

    def end_offset(self, topic: str, partition: int) -> int | None:
        key = (topic, partition)
        if key in self._ends:
            return self._ends[key]
        end: int | None = None
        if self._end_offset is not None:
            try:
                asked = self._end_offset(TopicPartition(topic, partition))
            except KafkaException as error:
                log.warning("end offset of %s[%d] unknown: %s", topic, partition, error)
            else:
                end = asked if asked >= 0 else None
        self._ends[key] = end
        return end
