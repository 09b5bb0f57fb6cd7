"""The local state store of one task: a RocksDB database (rocksdict) and its changelog position.

Keys and values are bytes. A store is the local copy of one partition of a compacted changelog
topic, which is the source of truth; it remembers the first changelog offset it has not applied
(the *checkpoint*, kept in the same database, so data and checkpoint move together).

Every way the checkpoint moves (the shape of Kafka Streams' ProcessorStateManager):

- **Commit** (`StagedWrites.apply`): after a Kafka transaction that carried a batch of changelog
  records committed, the batch is written to RocksDB with the checkpoint set one past the last of
  those records' offsets, in one atomic WriteBatch. Never before the commit: a store never holds a
  write whose changelog record and consumed input offsets were not committed with it.
- **Restore** (`processor.runtime.restore.restore_store`): a store behind its changelog (a crash
  between a commit and its RocksDB write, or a store from before a period another instance owned
  the partition) replays the changelog from the checkpoint to the stable end; the checkpoint moves
  with every restored batch, and last to the offset the fetch reached (past commit markers).
- **Rebuild** (`PartitionStore.reset`, and on open): a store that is corrupt, belongs to another
  changelog partition, or claims offsets past the changelog's end is deleted and starts at 0.
- An aborted transaction moves nothing: its writes were never applied.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO

from confluent_kafka import KafkaError, Message
from rocksdict import BlockBasedOptions, Cache, Options, Rdict, WriteBatch

from processor.runtime.transaction import KafkaTransaction

log = logging.getLogger(__name__)

# Reserved keys start with a NUL byte, which no domain key does.
_META_CHANGELOG = b"\x00meta/changelog"
_META_NEXT_OFFSET = b"\x00meta/changelog-next-offset"


class StoreMemory:
    """The RocksDB memory of one instance's stores, owned by its `StateManager` (nothing module-level).

    Bounded per store: memtables of `write_buffer_bytes`, at most `write_buffers` of them (the
    changelog, not RocksDB's WAL, is the source of truth, and values are written once per
    transaction); and one block cache of `block_cache_bytes` shared by every store of the instance
    (the decoded caches of the tasks serve the hot reads; this one serves what they miss). Bloom
    filters (10 bits per key) let a lookup of a key that is not there skip the files."""

    def __init__(self, block_cache_bytes: int = 8 * 1024 * 1024, write_buffer_bytes: int = 4 * 1024 * 1024,
                 write_buffers: int = 2) -> None:
        self._block_cache = Cache(block_cache_bytes)
        self._write_buffer_bytes = write_buffer_bytes
        self._write_buffers = write_buffers

    def options(self) -> Options:
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_write_buffer_size(self._write_buffer_bytes)
        options.set_max_write_buffer_number(self._write_buffers)
        table = BlockBasedOptions()
        table.set_block_cache(self._block_cache)
        # Most point lookups miss: a new fill id or event id is looked up before it is written once.
        # Without a filter each miss reads a block of every L0 file and level it could be in, which
        # grows with an execution's history (the history section of docs/benchmarks.md).
        table.set_bloom_filter(10, False)
        options.set_block_based_table_factory(table)
        return options


class StoreLocked(RuntimeError):
    """The store's database is open elsewhere (another process holds its RocksDB lock)."""


class StateDirLocked(RuntimeError):
    """Another processor owns the state directory."""


class StateDirLock:
    """One owner per state directory: an exclusive lock taken before any store opens.

    `flock` on `<state-dir>/.owner`, held for the process's life (released by the kernel if it
    dies, so a SIGKILLed owner never leaves a stale lock); the file names the owner, for the
    message a second instance fails with. Two processors on one directory would otherwise open
    each other's RocksDB databases (the failure behind faust-streaming #91/#92).
    """

    def __init__(self, state_dir: Path, owner: Mapping[str, object]) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / ".owner"
        self._file: IO[str] | None = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held until release)
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.seek(0)
            holder = self._file.read().strip() or "unknown owner"
            self._file.close()
            self._file = None
            raise StateDirLocked(f"state directory {state_dir} is owned by another processor ({holder}); "
                                 "give each instance its own --state-dir") from None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(json.dumps({**owner, "pid": os.getpid(), "host": socket.gethostname(),
                                     "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}))
        self._file.flush()

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


class PartitionStore:
    """State of one partition index, plus the changelog offset it is current up to."""

    def __init__(self, path: Path, changelog: str, partition: int, memory: StoreMemory | None = None) -> None:
        self.path = path
        self._memory = memory or StoreMemory()  # a store of its own (tools, tests) gets its own budget
        self.changelog = changelog
        self.partition = partition
        self.rebuilt = False
        self.closed = False
        self._db = self._open_or_rebuild()

    # -- reads -------------------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self._db.get(key)
        return value

    def items(self, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        for key, value in self._db.items(from_key=prefix):
            assert isinstance(key, bytes)  # raw mode: keys are bytes
            if not key.startswith(prefix):
                break
            if not key.startswith(b"\x00"):
                yield key, value

    @property
    def changelog_next_offset(self) -> int:
        """The first changelog offset not yet reflected in this store (0 for a new store)."""
        raw = self._db.get(_META_NEXT_OFFSET)
        return int(raw) if raw is not None else 0

    # -- writes ------------------------------------------------------------------------

    def write_batch(self, writes: Mapping[bytes, bytes | None], changelog_next_offset: int) -> None:
        """Apply `writes` (None deletes) and move the checkpoint, atomically."""
        batch = WriteBatch(raw_mode=True)
        for key, value in writes.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        batch.put(_META_NEXT_OFFSET, str(changelog_next_offset).encode())
        self._db.write(batch)

    def close(self) -> None:
        """Close the database (a second close does nothing)."""
        if not self.closed:
            self._db.close()
            self.closed = True

    def reset(self) -> None:
        """Throw away everything (the changelog is the source of truth) and start empty."""
        self._db.close()
        self._db = self._recreate(f"{self.changelog}/{self.partition}".encode())
        self.closed = False

    # -- internals ---------------------------------------------------------------------

    def _open_or_rebuild(self) -> Rdict:
        marker = f"{self.changelog}/{self.partition}".encode()
        try:
            db = Rdict(str(self.path), self._memory.options())
        except Exception as error:  # rocksdict raises plain exceptions
            text = str(error)
            if "lock" in text.lower():  # open elsewhere: never treat it as corruption (never delete it)
                raise StoreLocked(f"state store {self.path} is open in another process: {text}") from error
            if "Corruption" not in text and "CURRENT" not in text:
                raise  # an unknown failure (disk full, permissions): keep the data, stop
            log.warning("state store %s is corrupt (%s); rebuilding from changelog", self.path, error)
            return self._recreate(marker)
        owner = db.get(_META_CHANGELOG)
        if owner is None and db.get(_META_NEXT_OFFSET) is None:
            db.put(_META_CHANGELOG, marker)
            return db
        if owner != marker:
            log.warning("state store %s belongs to %r, not %r; rebuilding", self.path, owner, marker)
            db.close()
            return self._recreate(marker)
        return db

    def _recreate(self, marker: bytes) -> Rdict:
        self.rebuilt = True
        shutil.rmtree(self.path, ignore_errors=True)
        db = Rdict(str(self.path), self._memory.options())
        db.put(_META_CHANGELOG, marker)
        return db


class StagedWrites:
    """Raw writes to one store during one Kafka transaction: readable back at once, sent to the
    changelog by `produce_changelog`, written to RocksDB by `apply` once the transaction committed.

    A key written several times in a transaction is sent and written once, with its last value.
    """

    def __init__(self, store: PartitionStore) -> None:
        self.store = store
        self._writes: dict[bytes, bytes | None] = {}
        self._last_offset = -1  # highest changelog offset delivered for these writes
        self._on_refused: Callable[[bytes, KafkaError], None] | None = None

    def __len__(self) -> int:
        return len(self._writes)

    def get(self, key: bytes) -> bytes | None:
        if key in self._writes:
            return self._writes[key]
        return self.store.get(key)

    def put(self, key: bytes, value: bytes | None) -> None:
        """Write (or with None, delete) a key."""
        self._writes[key] = value

    def produce_changelog(self, txn: KafkaTransaction, on_refused: Callable[[bytes, KafkaError], None] | None = None) -> None:
        """One changelog record per written key (a tombstone for a delete), in this store's partition.
        `on_refused(key, error)` hears of a record the broker refused."""
        changelog, partition = self.store.changelog, self.store.partition
        self._on_refused = on_refused
        for key, value in self._writes.items():
            txn.produce(changelog, value, key=key, partition=partition, on_delivery=self._on_changelog_delivery)

    def apply(self) -> None:
        """The transaction committed: write RocksDB, checkpoint one past the last changelog record."""
        if self._writes:
            if self._last_offset < 0:
                raise RuntimeError(f"no changelog offset delivered for {len(self._writes)} write(s) of {self.store.path}")
            self.store.write_batch(self._writes, self._last_offset + 1)
        self.discard()

    def discard(self) -> None:
        self._writes = {}
        self._last_offset = -1

    def _on_changelog_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            offset = message.offset()
            if offset is not None and offset > self._last_offset:
                self._last_offset = offset
        elif self._on_refused is not None:
            self._on_refused(message.key() or b"", error)
