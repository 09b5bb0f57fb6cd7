"""The read model's store: every execution's summary, tickets and lifecycle log in an embedded
RocksDB database (rocksdict) under the gateway's state directory, with the Kafka offsets it
reflects. No Kafka here: `gateway.read_model` feeds it decoded records.

What is held, and where (keys are bytes; `E` is the execution id with its length in front, so
that no id is a prefix of another; `C` is created_at in micros, 20 digits):

- `h` E: the header: the rendered header view (`gateway.views.header_view`), the last state
  change applied (`seq`), ticket positions handed out, the highest lifecycle row stored, and the
  create's correlation id and trace context;
- `t` E ticket_id: one ticket, its position (6 digits) then its rendered JSON;
- `l` E seq (12 digits): one lifecycle row, rendered JSON;
- `k` E seq (12 digits): what caused the rows from seq on (the state change that carried them):
  its cause (`COMMAND` command id or `ORDER_EVENT` event id) and correlation id, for the console;
- `c` C execution_id: the list index (newest first by reverse iteration), value the status;
  `p` proposal_id C execution_id (proposal id length-prefixed) the same per proposal;
  `s` status NUL C execution_id the same per status;
- NUL `meta`, NUL `count`, NUL `off` topic NUL partition: what the store was built from (layout,
  cluster, topics), how many executions it holds, the next offset to read of each partition.

Folding follows the rules of `wire.views` (docs/wire.md): a state change (DELTA, or FULL before
v2) newer than the header's `seq` replaces the header and merges the tickets it carries; a table
row (SUMMARY) whose `last_sequence` is newer replaces the header and every ticket; anything not
newer changes no summary. Lifecycle rows are stored whatever the order (they are write-once by
seq), so the log is whole once every change has been read, whichever topic was read first.
Everything a batch of records changes, and the offsets after it, is written in one RocksDB
WriteBatch: a restart resumes exactly where the last write stopped.

The cost of a record is what it carries: a DELTA change reads one header and the tickets it
touched, writes them and its own rows; a table row writes its execution's tickets. Nothing reads
or rewrites the log. Readers (the asyncio loop) read through a RocksDB snapshot, so a GET never
sees half a batch.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from rocksdict import BlockBasedOptions, Cache, Options, Rdict, Snapshot, WriteBatch

from gateway.cursor import Cursor
from gateway.views import event_view, header_view, summary_view, ticket_view

log = logging.getLogger(__name__)

FORMAT = 2  # of the stored layout; another value rebuilds the store (2: the `k` cause rows)
_META = b"\x00meta"
_COUNT = b"\x00count"
_OFFSET = b"\x00off"
_CREATED_BIAS = 1 << 62  # created_at micros + bias: non-negative, 20 digits, sorts as the time
_MAX_ID_BYTES = 9999
TraceHeaders = tuple[tuple[str, bytes], ...]


class UnusableRecord(ValueError):
    """A decoded record the store cannot hold (an id too long, a field missing)."""


def _eid(execution_id: str) -> bytes:
    raw = execution_id.encode("utf-8")
    if len(raw) > _MAX_ID_BYTES:
        raise UnusableRecord(f"execution id of {len(raw)} bytes")
    return b"%04d" % len(raw) + raw


def _created(micros: int) -> bytes:
    return b"%020d" % (micros + _CREATED_BIAS)


def _header_key(execution_id: str) -> bytes:
    return b"h" + _eid(execution_id)


def _ticket_key(execution_id: str, ticket_id: str) -> bytes:
    return b"t" + _eid(execution_id) + ticket_id.encode("utf-8")


def _row_key(execution_id: str, seq: int) -> bytes:
    return b"l" + _eid(execution_id) + b"%012d" % seq


def _proposal_prefix(proposal_id: str) -> bytes:
    raw = proposal_id.encode("utf-8")
    return b"p" + b"%04d" % len(raw) + raw


def _status_prefix(status: str) -> bytes:
    return b"s" + status.encode("ascii") + b"\x00"


def _cause_key(execution_id: str, seq: int) -> bytes:
    return b"k" + _eid(execution_id) + b"%012d" % seq


def _offset_key(topic: str, partition: int) -> bytes:
    return _OFFSET + topic.encode("utf-8") + b"\x00" + str(partition).encode()


def micros(value: Any) -> int:
    """Microseconds since the epoch of an aware datetime."""
    seconds: int = int(value.timestamp())
    return seconds * 1_000_000 + int(value.microsecond)


@dataclass(frozen=True, slots=True)
class Origin:
    """What the execution's create carried: its correlation id and trace context headers."""

    correlation_id: str | None = None
    trace_headers: TraceHeaders = ()
    from_create: bool = False  # taken from the create's own state change (else inferred)

    def to_json(self) -> dict[str, Any]:
        return {"c": self.correlation_id, "t": [[k, v.decode("latin-1")] for k, v in self.trace_headers],
                "f": self.from_create}

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | None) -> Origin:
        if not value:
            return NO_ORIGIN
        return cls(value.get("c"), tuple((k, v.encode("latin-1")) for k, v in value.get("t") or ()),
                   bool(value.get("f")))


NO_ORIGIN = Origin()


def origin_of(change: Mapping[str, Any], headers: Iterable[tuple[str, Any]] | None = None,
              trace_names: tuple[str, ...] = ("traceparent", "tracestate")) -> Origin | None:
    """The origin a state change tells, if it tells one: the first change is the create's (its
    correlation id and trace headers); a change an order event caused names the create's
    correlation id (the processor sets it so)."""
    if change["sequence"] == 1:
        trace = tuple((name, bytes(value)) for name, value in headers or ()
                      if name in trace_names and value is not None)
        return Origin(change.get("correlation_id"), trace, from_create=True)
    if (change.get("cause") or {}).get("kind") == "ORDER_EVENT" and change.get("correlation_id"):
        return Origin(change["correlation_id"])
    return None


@dataclass(frozen=True, slots=True)
class ExecutionHead:
    """What a handler needs to know of an execution without its tickets or log."""

    execution_id: str
    sequence: int
    status: str
    view: dict[str, Any]  # gateway.views.header_view
    origin: Origin

    @property
    def summary(self) -> dict[str, Any]:
        return summary_view(self.view)


def _head(execution_id: str, header: Mapping[str, Any]) -> ExecutionHead:
    return ExecutionHead(execution_id, header["seq"], header["view"]["status"], header["view"],
                         Origin.from_json(header.get("origin")))


class StoreError(RuntimeError):
    """The store cannot be opened or written."""


def _options(cache_bytes: int, write_buffer_bytes: int) -> Options:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    # Bounded memory: one small block cache and two small memtables, whatever the data size. Index
    # and filter blocks stay in the table readers (about 6 % of the data: 6 MB for 100,000
    # executions): kept in a cache this small they were evicted and re-read, and a lookup took
    # 120-270 us instead of 3.
    table = BlockBasedOptions()
    table.set_block_cache(Cache(cache_bytes))
    # Most lookups while building miss (a new execution's header, a ticket first seen): a bloom
    # filter answers them without reading a data block of every file.
    table.set_bloom_filter(10, False)
    options.set_block_based_table_factory(table)
    options.set_write_buffer_size(write_buffer_bytes)
    options.set_max_write_buffer_number(2)
    options.set_max_open_files(512)
    options.set_keep_log_file_num(3)
    return options


class ReadStore:
    """The RocksDB database of the read model. Writes come from one thread (`StoreBatch.commit`);
    reads from any thread."""

    def __init__(self, path: Path, *, cache_bytes: int = 16 << 20, write_buffer_bytes: int = 16 << 20) -> None:
        self.path = path
        self._options = (cache_bytes, write_buffer_bytes)
        self.rebuilt_reason: str | None = None
        self._db = self._open()

    def _open(self) -> Rdict:
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            db = Rdict(str(self.path), _options(*self._options))
        except Exception as error:  # rocksdict raises plain exceptions (corruption, a foreign directory)
            if "lock" in str(error).lower():  # another process holds it: never delete its files
                raise StoreError(f"{self.path} is in use by another process: {error}") from None
            log.warning("read-model store %s cannot be opened (%s); rebuilding it from the topics", self.path, error)
            self.rebuilt_reason = f"unreadable store: {error}"
            shutil.rmtree(self.path, ignore_errors=True)
            self.path.mkdir(parents=True)
            db = Rdict(str(self.path), _options(*self._options))
        return db

    # -- what the store was built from ----------------------------------------------------------

    def identity(self) -> dict[str, Any] | None:
        raw = self._db.get(_META)
        return None if raw is None else orjson.loads(raw)

    def reset(self, identity: Mapping[str, Any], reason: str) -> None:
        """Throw everything away and start empty for `identity` (the topics are the source of truth)."""
        if self.identity() is not None or self.count():
            log.warning("rebuilding the read-model store %s from the topics: %s", self.path, reason)
            self.rebuilt_reason = reason
        self._db.close()
        shutil.rmtree(self.path, ignore_errors=True)
        self._db = self._open()
        self._db.put(_META, orjson.dumps({**identity, "format": FORMAT}))

    def offsets(self) -> dict[tuple[str, int], int]:
        """The next offset to read of every partition the store has read from."""
        found: dict[tuple[str, int], int] = {}
        for key, value in self._db.items(from_key=_OFFSET):
            assert isinstance(key, bytes)
            if not key.startswith(_OFFSET):
                break
            topic, _, partition = key[len(_OFFSET):].rpartition(b"\x00")
            found[(topic.decode("utf-8"), int(partition))] = int(value)
        return found

    def count(self) -> int:
        raw = self._db.get(_COUNT)
        return 0 if raw is None else int(raw)

    # -- writes ---------------------------------------------------------------------------------

    def batch(self) -> StoreBatch:
        return StoreBatch(self)

    def _get(self, key: bytes) -> bytes | None:
        value: bytes | None = self._db.get(key)
        return value

    def _write(self, batch: WriteBatch) -> None:
        self._db.write(batch)

    # -- reads (any thread) ---------------------------------------------------------------------

    def head(self, execution_id: str) -> ExecutionHead | None:
        try:
            raw = self._db.get(_header_key(execution_id))
        except UnusableRecord:
            return None
        return None if raw is None else _head(execution_id, orjson.loads(raw))

    def has_ticket(self, execution_id: str, ticket_id: str) -> bool:
        try:
            return self._db.get(_ticket_key(execution_id, ticket_id)) is not None
        except UnusableRecord:
            return False

    def execution(self, execution_id: str, recent: int) -> tuple[ExecutionHead, list[bytes], list[bytes]] | None:
        """The head, every ticket (rendered, in ticket order) and the `recent` last lifecycle rows
        (rendered, ascending), read from one snapshot."""
        try:
            eid = _eid(execution_id)
        except UnusableRecord:
            return None
        snapshot = self._db.snapshot()
        raw = _snapshot_get(snapshot, b"h" + eid)
        if raw is None:
            return None
        tickets = sorted(value for _, value in _prefix_items(snapshot, b"t" + eid))
        rows = _last_values(snapshot, b"l" + eid, recent)
        return _head(execution_id, orjson.loads(raw)), [t[6:] for t in tickets], rows

    def events(self, execution_id: str, after_seq: int, limit: int) -> tuple[list[bytes], bool] | None:
        """Up to `limit` lifecycle rows with seq > `after_seq`, ascending; and whether more are held.
        None if the execution is unknown."""
        try:
            eid = _eid(execution_id)
        except UnusableRecord:
            return None
        snapshot = self._db.snapshot()
        if _snapshot_get(snapshot, b"h" + eid) is None:
            return None
        prefix = b"l" + eid
        rows: list[bytes] = []
        iterator = snapshot.iter()
        iterator.seek(prefix + b"%012d" % (after_seq + 1))
        while iterator.valid():
            key = iterator.key()
            if not key.startswith(prefix):
                break
            if len(rows) == limit:
                return rows, True
            rows.append(iterator.value())
            iterator.next()
        return rows, False

    def causes(self, execution_id: str, lowest: int, highest: int) -> list[tuple[int, dict[str, Any]]]:
        """What caused the lifecycle rows `lowest`..`highest`: (first row seq, cause) of each state
        change that carried some of them, ascending (rows from a table row alone have none)."""
        try:
            prefix = b"k" + _eid(execution_id)
        except UnusableRecord:
            return []
        found: list[tuple[int, dict[str, Any]]] = []
        iterator = self._db.snapshot().iter()
        iterator.seek_for_prev(prefix + b"%012d" % highest)
        while iterator.valid():
            key = iterator.key()
            if not key.startswith(prefix):
                break
            seq = int(key[len(prefix):])
            found.append((seq, orjson.loads(iterator.value())))
            if seq <= lowest:
                break
            iterator.prev()
        found.reverse()
        return found

    def page(
        self,
        *,
        limit: int,
        after: Cursor | None = None,
        proposal_id: str | None = None,
        status: str | None = None,
        from_us: int | None = None,
        to_us: int | None = None,
    ) -> tuple[list[dict[str, Any]], Cursor | None]:
        """Up to `limit` summaries, newest first (created_at, then execution id, descending),
        strictly after `after`; and the cursor of the next page (None when nothing matches beyond
        this page). Walks the smallest index the filters allow, from its end: never every body."""
        snapshot = self._db.snapshot()
        if proposal_id is not None:
            prefix = _proposal_prefix(proposal_id)
            status_in_value = status
        elif status is not None:
            prefix = _status_prefix(status)
            status_in_value = None
        else:
            prefix = b"c"
            status_in_value = None
        bound = prefix + b"\xff"
        if to_us is not None:  # created_at < to
            bound = min(bound, prefix + _created(to_us))
        cursor_key = None
        if after is not None:
            cursor_key = prefix + _created(after.created_us) + after.execution_id.encode("utf-8")
            bound = min(bound, cursor_key)
        lowest = None if from_us is None else prefix + _created(from_us)
        iterator = snapshot.iter()
        iterator.seek_for_prev(bound)
        found: list[tuple[int, str]] = []
        while iterator.valid():
            key = iterator.key()
            if not key.startswith(prefix) or (lowest is not None and key < lowest):
                break
            if (cursor_key is None or key < cursor_key) and (
                    status_in_value is None or iterator.value() == status_in_value.encode("ascii")):
                found.append((int(key[len(prefix):len(prefix) + 20]) - _CREATED_BIAS,
                              key[len(prefix) + 20:].decode("utf-8")))
                if len(found) > limit:
                    break
            iterator.prev()
        following = None
        if len(found) > limit:
            found = found[:limit]
            following = Cursor(*found[-1])
        summaries = []
        for _, execution_id in found:
            raw = _snapshot_get(snapshot, _header_key(execution_id))
            if raw is not None:
                summaries.append(summary_view(orjson.loads(raw)["view"]))
        return summaries, following

    def close(self) -> None:
        self._db.close()


def _snapshot_get(snapshot: Snapshot, key: bytes) -> bytes | None:
    """The value of `key` in the snapshot (rocksdict's Snapshot has no get(); a miss in []
    raises a bare Exception)."""
    iterator = snapshot.iter()
    iterator.seek(key)
    if iterator.valid() and iterator.key() == key:
        value: bytes = iterator.value()
        return value
    return None


def _prefix_items(snapshot: Snapshot, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
    iterator = snapshot.iter()
    iterator.seek(prefix)
    while iterator.valid():
        key = iterator.key()
        if not key.startswith(prefix):
            return
        yield key, iterator.value()
        iterator.next()


def _last_values(snapshot: Snapshot, prefix: bytes, count: int) -> list[bytes]:
    values: list[bytes] = []
    if count <= 0:
        return values
    iterator = snapshot.iter()
    iterator.seek_for_prev(prefix + b"\xff")
    while iterator.valid() and len(values) < count:
        if not iterator.key().startswith(prefix):
            break
        values.append(iterator.value())
        iterator.prev()
    values.reverse()
    return values


class StoreBatch:
    """The writes of one batch of records: read back within the batch, written atomically with the
    offsets by `commit`. One thread (the read model's consumer) at a time.

    Headers and tickets are rendered at commit, once each per batch, from the newest decoded
    record that carried them: a batch holding several changes of one execution (a rebuild reads
    them back to back) renders its header and each ticket once. Lifecycle rows are rendered as they
    come (each is written once)."""

    def __init__(self, store: ReadStore) -> None:
        self._store = store
        self._headers: dict[str, dict[str, Any]] = {}  # execution id -> header (decoded, to be written)
        self._views: dict[str, Mapping[str, Any]] = {}  # execution id -> the snapshot its header view comes from
        self._tickets: dict[bytes, tuple[int, Mapping[str, Any]]] = {}  # ticket key -> (position, decoded entry)
        self._writes: dict[bytes, bytes | None] = {}  # raw puts (None: delete)
        self._new = 0

    def __len__(self) -> int:
        return len(self._headers) + len(self._writes)

    def _header(self, execution_id: str, snapshot: Mapping[str, Any]) -> dict[str, Any]:
        header = self._headers.get(execution_id)
        if header is None:
            raw = self._store._get(_header_key(execution_id))  # noqa: SLF001 - the store's own batch
            if raw is None:
                header = {"seq": 0, "view": None, "status": None, "nt": 0, "rows": 0, "origin": None,
                          "created_us": micros(snapshot["created_at"]), "proposal_id": snapshot["proposal_id"]}
                self._new += 1
            else:
                header = orjson.loads(raw)
            self._headers[execution_id] = header
        return header

    def _position(self, key: bytes) -> int | None:
        """The position of a ticket held (in this batch or the store)."""
        pending = self._tickets.get(key)
        if pending is not None:
            return pending[0]
        held = self._store._get(key)  # noqa: SLF001
        return None if held is None else int(held[:6])

    # -- folding --------------------------------------------------------------------------------

    def apply_change(self, change: Mapping[str, Any], origin: Origin | None = None) -> bool:
        """Fold one decoded ExecutionStateChange; False if its summary was not newer than held
        (its lifecycle rows are stored either way)."""
        execution_id = change["execution_id"]
        snapshot = change["execution"]
        content = snapshot.get("content") or "FULL"
        header = self._header(execution_id, snapshot)
        newer: bool = change["sequence"] > header["seq"]
        if newer:
            self._apply_header(execution_id, header, snapshot, change["sequence"])
            self._apply_tickets(execution_id, header, snapshot["tickets"], replace_all=content != "DELTA")
        rows = snapshot["events"]
        if content == "FULL":  # the whole log again (before v2): only what is not stored yet
            rows = [row for row in rows if row["seq"] > header["rows"]]
        for row in rows:
            self._writes[_row_key(execution_id, row["seq"])] = orjson.dumps(event_view(row))
            if row["seq"] > header["rows"]:
                header["rows"] = row["seq"]
        if rows:
            cause = change.get("cause") or {}
            self._writes[_cause_key(execution_id, min(row["seq"] for row in rows))] = orjson.dumps(
                {"kind": cause.get("kind"), "id": cause.get("id"), "correlation_id": change.get("correlation_id")})
        if origin is not None:
            held = Origin.from_json(header.get("origin"))
            if (origin.from_create and not held.from_create) or held == NO_ORIGIN:
                header["origin"] = origin.to_json()
        return newer

    def apply_snapshot(self, snapshot: Mapping[str, Any]) -> bool:
        """Fold one decoded table row (SUMMARY); False if it is not newer than held."""
        execution_id = snapshot["execution_id"]
        header = self._header(execution_id, snapshot)
        last = snapshot.get("last_sequence") or 0
        if last <= header["seq"] and header["status"] is not None:
            return False
        self._apply_header(execution_id, header, snapshot, last)
        self._apply_tickets(execution_id, header, snapshot["tickets"], replace_all=True)
        if snapshot.get("content") == "FULL":
            for row in snapshot["events"]:
                if row["seq"] > header["rows"]:
                    self._writes[_row_key(execution_id, row["seq"])] = orjson.dumps(event_view(row))
                    header["rows"] = row["seq"]
        return True

    def _apply_header(self, execution_id: str, header: dict[str, Any], snapshot: Mapping[str, Any],
                      sequence: int) -> None:
        old_status = header["status"]
        status = snapshot["status"]
        self._views[execution_id] = snapshot  # rendered at commit
        header["seq"] = sequence
        header["status"] = status
        if status != old_status:
            tail = _created(header["created_us"]) + execution_id.encode("utf-8")
            if old_status is not None:
                self._writes[_status_prefix(old_status) + tail] = None
            self._writes[_status_prefix(status) + tail] = b""
            self._writes[b"c" + tail] = status.encode("ascii")
            self._writes[_proposal_prefix(header["proposal_id"]) + tail] = status.encode("ascii")

    def _apply_tickets(self, execution_id: str, header: dict[str, Any], tickets: Iterable[Mapping[str, Any]],
                       *, replace_all: bool) -> None:
        for position, entry in enumerate(tickets):
            key = _ticket_key(execution_id, entry["ticket"]["ticket_id"])
            if not replace_all:  # a DELTA: keep the ticket's place; a ticket not seen yet goes last
                held = self._position(key)
                position = header["nt"] if held is None else held
            if position >= header["nt"]:
                header["nt"] = position + 1
            self._tickets[key] = (position, entry)

    # -- writing --------------------------------------------------------------------------------

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        """Render what was folded, write it and the offsets after it, atomically."""
        batch = WriteBatch(raw_mode=True)
        for key, value in self._writes.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        for key, (position, entry) in self._tickets.items():
            batch.put(key, b"%06d" % position + orjson.dumps(ticket_view(entry)))
        for execution_id, header in self._headers.items():
            snapshot = self._views.get(execution_id)
            if snapshot is not None:
                header["view"] = header_view(snapshot)
            if header["view"] is None:  # nothing but rows of an unknown execution: cannot happen
                continue
            batch.put(_header_key(execution_id), orjson.dumps(header))
        if self._new:
            batch.put(_COUNT, str(self._store.count() + self._new).encode())
        for (topic, partition), offset in offsets.items():
            batch.put(_offset_key(topic, partition), str(offset).encode())
        self._store._write(batch)  # noqa: SLF001
        self._headers.clear()
        self._views.clear()
        self._tickets.clear()
        self._writes.clear()
        self._new = 0
