"""Decoded state values over the RocksDB stores, with write-back once per transaction.

Folding an order event must not pay for decoding and encoding the whole execution each time:
values are decoded once and kept; a value changed several times in one transaction is
encoded once, when the transaction is prepared. After an abort every cached value is dropped
(the stores hold the committed truth); after a commit, changed values become clean.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from processor.state_store import PartitionStore
from processor.transaction import ProcessingTransaction

T = TypeVar("T")

_DELETED = object()
_MISSING = object()


class StateCache(Generic[T]):
    def __init__(
        self,
        prefix: bytes,
        encode: Callable[[T], bytes],
        decode: Callable[[bytes], T],
        *,
        max_clean_entries: int = 50_000,
    ) -> None:
        self._prefix = prefix
        self._encode = encode
        self._decode = decode
        self._max_clean = max_clean_entries
        self._clean: dict[str, tuple[PartitionStore, T]] = {}
        self._dirty: dict[str, tuple[PartitionStore, object]] = {}
        # (key, previous dirty entry, previous clean entry) of the input record being handled
        self._undo: list[tuple[str, object, object]] = []

    def get(self, txn: ProcessingTransaction, store: PartitionStore, key: str) -> T | None:
        if key in self._dirty:
            value = self._dirty[key][1]
            return None if value is _DELETED else value  # type: ignore[return-value]
        cached = self._clean.get(key)
        if cached is not None and cached[0] is store:
            return cached[1]
        raw = txn.get(store, self._prefix + key.encode())
        if raw is None:
            return None
        value = self._decode(raw)
        self._clean[key] = (store, value)
        return value

    def put(self, store: PartitionStore, key: str, value: T) -> None:
        self._undo.append((key, self._dirty.get(key, _MISSING), _MISSING))
        self._dirty[key] = (store, value)

    def delete(self, store: PartitionStore, key: str) -> None:
        self._undo.append((key, self._dirty.get(key, _MISSING), self._clean.pop(key, _MISSING)))
        self._dirty[key] = (store, _DELETED)

    def record_done(self) -> None:
        self._undo.clear()

    def record_failed(self) -> None:
        """Undo the changes of an input record whose handling failed part-way."""
        for key, dirty, clean in reversed(self._undo):
            if dirty is _MISSING:
                self._dirty.pop(key, None)
            else:
                self._dirty[key] = dirty  # type: ignore[assignment]
            if clean is not _MISSING:
                self._clean[key] = clean  # type: ignore[assignment]
        self._undo.clear()

    def flush(self, txn: ProcessingTransaction) -> None:
        """Write every changed value into the transaction (before it is prepared)."""
        for key, (store, value) in self._dirty.items():
            txn.put(store, self._prefix + key.encode(), None if value is _DELETED else self._encode(value))  # type: ignore[arg-type]

    def committed(self) -> None:
        for key, (store, value) in self._dirty.items():
            if value is not _DELETED:
                self._clean[key] = (store, value)  # type: ignore[assignment]
        self._dirty.clear()
        if len(self._clean) > self._max_clean:
            self._clean.clear()  # cheap bound: a cold read costs one RocksDB get + decode

    def aborted(self) -> None:
        self._dirty.clear()
        self._clean.clear()
        self._undo.clear()

    def forget(self, stores: Iterable[PartitionStore]) -> None:
        gone = set(map(id, stores))
        self._clean = {k: v for k, v in self._clean.items() if id(v[0]) not in gone}
        self._dirty = {k: v for k, v in self._dirty.items() if id(v[0]) not in gone}
