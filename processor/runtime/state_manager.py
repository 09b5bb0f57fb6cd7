"""Opens, restores and closes tasks as partitions are assigned, revoked and lost.

The shape of quixstreams' `StateStoreManager.on_partition_assign/on_partition_revoke`: store
lifecycle and recovery belong here, not to the loop. A task exists for every assigned
(subtopology, partition): partition p of every input topic of a subtopology is assigned to one
instance together (range assignor over equally partitioned topics), and its state lives in the
store `<state-dir>/<subtopology>/<p>`, whose changelog is partition p of the subtopology's
changelog topic. A newly assigned task is restored from its changelog before any of its records
is processed; a revoked or lost task is closed, taking its store handle and caches with it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from processor.metrics import ProcessorMetrics
from processor.runtime.restore import StoreAheadOfChangelog, restore_store
from processor.runtime.store import PartitionStore, StoreMemory
from processor.runtime.task import Task, TaskId

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Subtopology:
    """Input topics that share a key space, partition count and state store."""

    name: str
    input_topics: tuple[str, ...]
    changelog_topic: str


TaskFactory = Callable[[TaskId, PartitionStore, int], Task]  # (task, its store, the subtopology's partition count)


class StateManager:
    def __init__(
        self,
        subtopologies: Sequence[Subtopology],
        state_dir: Path,
        build_task: TaskFactory,
        *,
        restore_consumer: Consumer,
        metrics: ProcessorMetrics,
        changelog_written_end: Callable[[TopicPartition], int] | None = None,
    ) -> None:
        self._subtopologies = {sub.name: sub for sub in subtopologies}
        self._subtopology_of = {topic: sub for sub in subtopologies for topic in sub.input_topics}
        self._state_dir = state_dir
        self._build_task = build_task
        self._restore_consumer = restore_consumer
        self._written_end = changelog_written_end
        self._metrics = metrics
        self._memory = StoreMemory()  # the RocksDB memory every store of this instance shares
        self._tasks: dict[TaskId, Task] = {}
        self._partition_counts: dict[str, int] = {}
        self.restored: list[tuple[str, int, int]] = []  # (subtopology, partition, records) per restore

    @property
    def input_topics(self) -> list[str]:
        return sorted(self._subtopology_of)

    def task_for(self, topic: str, partition: int) -> Task | None:
        """The running task of a record, or None if its partition is not assigned here (any more)."""
        return self._tasks.get(TaskId(self._subtopology_of[topic].name, partition))

    def tasks(self) -> list[Task]:
        return list(self._tasks.values())

    def task_ids(self, partitions: Iterable[TopicPartition]) -> list[TaskId]:
        return sorted({TaskId(self._subtopology_of[tp.topic].name, tp.partition) for tp in partitions})

    # -- rebalance callbacks (called by the loop, after it committed or aborted) ----------------

    def on_partition_assign(self, partitions: Iterable[TopicPartition]) -> None:
        for task_id in self.task_ids(partitions):
            if task_id not in self._tasks:
                self._tasks[task_id] = self._open(task_id)

    def on_partition_revoke(self, partitions: Iterable[TopicPartition]) -> None:
        self._close(self.task_ids(partitions))

    def on_partition_lost(self, partitions: Iterable[TopicPartition]) -> None:
        self._close(self.task_ids(partitions))

    def close(self) -> None:
        self._close(list(self._tasks))

    # -- internals -------------------------------------------------------------------------------

    def _open(self, task_id: TaskId) -> Task:
        sub = self._subtopologies[task_id.subtopology]
        path = self._state_dir / sub.name / str(task_id.partition)
        path.parent.mkdir(parents=True, exist_ok=True)
        store = PartitionStore(path, sub.changelog_topic, task_id.partition, self._memory)
        try:
            task = self._build_task(task_id, store, self._partition_count(sub))
        except BaseException:
            store.close()
            raise
        task.begin_restore()

        def progress(p: int, position: int, end: int) -> None:
            self._metrics.restore_remaining.labels(sub.name, str(p)).set(max(end - position, 0))

        try:
            result = restore_store(store, self._restore_consumer, on_progress=progress, written_end=self._written_end)
        except StoreAheadOfChangelog as error:
            log.warning("store %s inconsistent with its changelog (%s); rebuilding", task_id, error)
            store.reset()
            result = restore_store(store, self._restore_consumer, on_progress=progress, written_end=self._written_end)
        except BaseException:
            store.close()
            raise
        task.initialize()
        self._metrics.restore_remaining.labels(sub.name, str(task_id.partition)).set(0)
        self._metrics.restored_records.labels(sub.name).inc(result.records_restored)
        self.restored.append((sub.name, task_id.partition, result.records_restored))
        log.info(
            "restored store %s: %d changelog records from offset %d to %d in %.2fs%s",
            task_id, result.records_restored, result.from_offset, result.end_offset,
            result.seconds, " (rebuilt)" if result.store_rebuilt else "",
        )
        return task

    def _partition_count(self, sub: Subtopology) -> int:
        """Partitions of the subtopology's input topics (equal: checked at start-up)."""
        count = self._partition_counts.get(sub.name)
        if count is None:
            topic = sub.input_topics[0]
            metadata = self._restore_consumer.list_topics(topic, timeout=30).topics[topic]
            count = self._partition_counts[sub.name] = len(metadata.partitions)
        return count

    def cache_bytes(self) -> dict[tuple[str, int], int]:
        """(store, partition) -> bytes of decoded values cached, for the metric."""
        return {(kv.name, task.id.partition): kv.cached_bytes for task in self._tasks.values() for kv in task.stores}

    def _close(self, task_ids: Iterable[TaskId]) -> None:
        for task_id in task_ids:
            task = self._tasks.pop(task_id, None)
            if task is not None:
                task.close()
