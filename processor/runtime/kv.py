"""Typed key-value stores over a task's RocksDB store, with read-your-writes and a decoded cache.

A `KeyValueStore[T]` is one key prefix of a task's `PartitionStore` together with the codec of
its values. Reads look, in order, at what the input record being handled has written (its
`RecordJournal`), what earlier records of the open transaction wrote (dirty), the decoded values
already read (clean), and RocksDB. Writes go to the journal; when the record is handled in full
they become dirty; when the task prepares its commit, each dirty value is encoded once into the
changelog; when the transaction committed they become clean.

The store belongs to its task: revoking the partition closes the task and drops the store with
every cached value (nothing here is module-level). The decoded cache is bounded in bytes (each
value counted by its encoded size), least recently used out first; `cached_bytes` is exported as
`processor_state_cache_bytes{store,partition}`.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from typing import Generic, Protocol, TypeVar

from processor.runtime.store import PartitionStore, StagedWrites

T = TypeVar("T")


class Marker(enum.Enum):
    """Typed sentinels of the store layers (quixstreams' `Marker`)."""

    UNDEFINED = "undefined"  # this layer does not know the key: look further down
    DELETED = "deleted"  # this layer deleted the key


class Codec(Protocol[T]):
    """Bytes of a stored value, both ways. A codec may keep caches: it belongs to one task."""

    def encode(self, value: T) -> bytes: ...

    def decode(self, data: bytes) -> T: ...


class JournalView(Protocol):
    """What a store needs of the journal of the record being handled (`RecordJournal`)."""

    def read(self, store: KeyValueStore[T], key: str) -> T | Marker: ...

    def write(self, store: KeyValueStore[T], key: str, value: T | Marker) -> None: ...


class KeyValueStore(Generic[T]):
    def __init__(
        self,
        name: str,
        prefix: bytes,
        codec: Codec[T],
        store: PartitionStore,
        journal: JournalView,
        *,
        max_cached_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        self.name = name
        self.prefix = prefix
        self.codec = codec
        self._store = store
        self._journal = journal
        self._max_bytes = max_cached_bytes
        self._clean: OrderedDict[str, tuple[T, int]] = OrderedDict()  # committed values, decoded, LRU order
        self._clean_bytes = 0
        self._dirty: dict[str, T | Marker] = {}  # written by records of the open transaction
        self._sizes: dict[str, int] = {}  # encoded size of the dirty values, once flushed
        self._uncached: set[str] = set()  # keys not to cache when the open transaction commits

    def __repr__(self) -> str:
        return f"KeyValueStore({self.name!r}, {self._store.path})"

    # -- what handlers call ----------------------------------------------------------------

    def get(self, key: str) -> T | None:
        value = self._journal.read(self, key)
        if value is Marker.UNDEFINED:
            value = self._dirty.get(key, Marker.UNDEFINED)
        if value is Marker.UNDEFINED:
            cached = self._clean.get(key)
            if cached is not None:
                self._clean.move_to_end(key)
                return cached[0]
            raw = self._store.get(self.prefix + key.encode())
            if raw is None:
                return None
            decoded = self.codec.decode(raw)
            self._remember(key, decoded, len(raw))
            return decoded
        return None if value is Marker.DELETED else value

    def put(self, key: str, value: T) -> None:
        self._journal.write(self, key, value)

    def delete(self, key: str) -> None:
        self._journal.write(self, key, Marker.DELETED)

    def uncache(self, key: str) -> None:
        """Keep `key`'s decoded value out of memory: it is not expected to be read again soon (e.g.
        a complete execution). Dropped from the cache now and not cached when the open transaction
        commits; a later read decodes it from RocksDB again."""
        self._forget(key)
        self._uncached.add(key)

    # -- what the task and the journal call ------------------------------------------------

    def keep(self, key: str, value: T | Marker) -> None:
        """A record that wrote `key` was handled in full: its write joins the open transaction."""
        self._dirty[key] = value

    def flush(self, staged: StagedWrites) -> None:
        """Encode each value written in the open transaction once, into the task's staged writes."""
        prefix, encode, sizes = self.prefix, self.codec.encode, self._sizes
        for key, value in self._dirty.items():
            if value is Marker.DELETED:
                staged.put(prefix + key.encode(), None)
            else:
                data = encode(value)  # type: ignore[arg-type]
                sizes[key] = len(data)
                staged.put(prefix + key.encode(), data)

    def committed(self) -> None:
        for key, value in self._dirty.items():
            if value is Marker.DELETED or key in self._uncached:
                self._forget(key)
            else:
                self._remember(key, value, self._sizes.get(key, 0))  # type: ignore[arg-type]
        self._dirty.clear()
        self._sizes.clear()
        self._uncached.clear()

    def aborted(self) -> None:
        """The open transaction's writes are gone; committed values stay valid (they are immutable)."""
        self._dirty.clear()
        self._sizes.clear()
        self._uncached.clear()

    def clear_cache(self) -> None:
        self._clean.clear()
        self._clean_bytes = 0
        self._dirty.clear()
        self._sizes.clear()
        self._uncached.clear()

    def written(self) -> list[tuple[str, T]]:
        """The values written (not deleted) in the open transaction, by key."""
        return [(key, value) for key, value in self._dirty.items() if value is not Marker.DELETED]  # type: ignore[misc]

    @property
    def cached(self) -> int:
        return len(self._clean)

    @property
    def cached_bytes(self) -> int:
        return self._clean_bytes

    def _remember(self, key: str, value: T, size: int) -> None:
        if self._max_bytes <= 0:  # write-once facts looked up by id: a cache would rarely hit
            return
        self._forget(key)
        self._clean[key] = (value, size)
        self._clean_bytes += size
        while self._clean_bytes > self._max_bytes and self._clean:
            _, (_, evicted) = self._clean.popitem(last=False)  # least recently used first
            self._clean_bytes -= evicted

    def _forget(self, key: str) -> None:
        held = self._clean.pop(key, None)
        if held is not None:
            self._clean_bytes -= held[1]
