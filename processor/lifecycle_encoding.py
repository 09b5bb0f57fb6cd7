"""The lifecycle log of an execution, Avro-encoded once per entry and extended, not rebuilt.

Every ExecutionStateChange carries the execution's whole lifecycle log (the contract), and a
log only grows: encoding every row again on every change made publishing O(log) in fastavro
work, the top of the profile (docs/benchmarks.md). This keeps, per execution, the encoded rows
of its log so far and encodes only the entries appended since; `wire.serde.splice_array_before_tail`
puts them into a state change encoded with the array empty, giving the bytes of the plain
encoding.

Log entries are immutable and cached by identity: a cached value holds its entry, so the id
cannot be reused while cached. After an abort the processor decodes executions afresh (new
objects), which simply misses the cache. Both caches are bounded and cleared when full; a miss
costs one plain encoding of the log.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from execution_domain import Execution
from execution_domain.log import LogEntry
from wire import serde
from wire.records import lifecycle_rows

_EXECUTIONS_LIMIT: Final = 50_000
_ENTRIES_LIMIT: Final = 20_000
# Appends since the last snapshot of an execution: one entry per change, a few when a change
# releases tickets (each release is an entry of its own).
_LOOK_BACK: Final = 4


class EncodedLifecycleCache:
    def __init__(self, encode_row: Callable[[Mapping[str, Any]], bytes] | None = None) -> None:
        self._encode_row = encode_row or serde.body_encoder("LifecycleEvent")
        # execution_id -> (last entry covered, row count, encoded rows)
        self._executions: dict[str, tuple[LogEntry, int, bytes]] = {}
        # id(entry) -> (entry, seq of its first row, row count, encoded rows)
        self._entries: dict[int, tuple[LogEntry, int, int, bytes]] = {}

    def encoded(self, execution: Execution) -> tuple[int, bytes]:
        """(row count, encoded rows) of the snapshot's ``events`` array for `execution`."""
        log = execution.log
        cached = self._executions.get(execution.execution_id)
        if cached is not None and cached[0] is log[-1]:
            return cached[1], cached[2]
        start, count, parts = 0, 0, []
        if cached is not None:
            for back in range(2, min(len(log), _LOOK_BACK) + 1):
                if log[-back] is cached[0]:
                    start, count, parts = len(log) - back + 1, cached[1], [cached[2]]
                    break
        for entry in log[start:]:
            rows, data = self._entry(entry, count + 1)
            count += rows
            parts.append(data)
        encoded = b"".join(parts)
        if len(self._executions) >= _EXECUTIONS_LIMIT:
            self._executions.clear()
        self._executions[execution.execution_id] = (log[-1], count, encoded)
        return count, encoded

    def _entry(self, entry: LogEntry, first_seq: int) -> tuple[int, bytes]:
        cached = self._entries.get(id(entry))
        if cached is not None and cached[0] is entry and cached[1] == first_seq:
            return cached[2], cached[3]
        rows = lifecycle_rows(entry, first_seq)
        data = b"".join([self._encode_row(row) for row in rows])
        if len(self._entries) >= _ENTRIES_LIMIT:
            self._entries.clear()
        self._entries[id(entry)] = (entry, first_seq, len(rows), data)
        return len(rows), data
