"""The effects of one input record, all or nothing, in one place.

While a handler runs, every state write (`KeyValueStore.put/delete`) and every output record
goes into the task's journal and nowhere else. If the handler returns, `commit` hands the outputs
to the Kafka transaction and the writes to their stores' open-transaction layer; if it raises,
`discard` forgets both: the record leaves no trace but its dead letter. There is nothing to undo,
because nothing was applied before the record was handled in full.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from observability import tracing
from processor.runtime.kv import Marker
from processor.runtime.transaction import DeliveryCallback, Headers, KafkaTransaction

if TYPE_CHECKING:
    from processor.runtime.kv import KeyValueStore

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class OutputRecord:
    topic: str
    value: bytes
    key: bytes | None
    headers: Headers | None = None


class JournalStateError(RuntimeError):
    """A store was written or an output produced outside the handling of a record."""


class RecordJournal:
    def __init__(self) -> None:
        self._writes: dict[tuple[int, str], tuple[KeyValueStore[Any], Any]] = {}
        self._outputs: list[OutputRecord] = []
        self._open = False
        self._trace_headers: Headers = []

    @property
    def open(self) -> bool:
        return self._open

    @property
    def trace_headers(self) -> Headers:
        """W3C trace context (`traceparent`/`tracestate` byte headers) the outputs of this record
        carry: the input's own, or what its handler sets (e.g. the execution's create trace). Log
        lines written meanwhile carry its trace id (`observability.tracing.handling_record`)."""
        return self._trace_headers

    @trace_headers.setter
    def trace_headers(self, headers: Headers) -> None:
        self._trace_headers = headers
        tracing.handling_record(headers)

    def begin(self) -> None:
        if self._open:
            raise JournalStateError("a record is already being handled")
        self._open = True

    # -- during the handler ---------------------------------------------------------------

    def read(self, store: KeyValueStore[T], key: str) -> T | Marker:
        written = self._writes.get((id(store), key))
        return Marker.UNDEFINED if written is None else cast("T | Marker", written[1])

    def write(self, store: KeyValueStore[T], key: str, value: T | Marker) -> None:
        self._require_open()
        self._writes[(id(store), key)] = (store, value)

    def produce(self, record: OutputRecord) -> None:
        self._require_open()
        self._outputs.append(record)

    @property
    def outputs(self) -> list[OutputRecord]:
        return self._outputs

    # -- after the handler ----------------------------------------------------------------

    def commit(self, txn: KafkaTransaction, on_delivery: DeliveryCallback | None = None) -> list[bytes]:
        """The record was handled in full: its outputs go to the transaction, its writes to the stores.
        Returns the store keys it wrote (prefix included). A KafkaException from the producer (a record
        refused at once, e.g. too large) escapes, and the transaction is FAILED: it must be aborted."""
        try:
            trace = self._trace_headers
            for record in self._outputs:  # each carries the record's trace context
                headers = [*(record.headers or ()), *trace] if trace else record.headers
                txn.produce(record.topic, record.value, key=record.key, headers=headers, on_delivery=on_delivery)
            written = []
            for (_, key), (store, value) in self._writes.items():
                store.keep(key, value)
                written.append(store.prefix + key.encode())
            return written
        finally:
            self._reset()

    def discard(self) -> None:
        """Handling failed part-way (or the record is skipped): forget its writes and outputs."""
        self._reset()

    def _reset(self) -> None:
        self._writes = {}
        self._outputs = []
        self._open = False
        if self._trace_headers:
            self.trace_headers = []

    def _require_open(self) -> None:
        if not self._open:
            raise JournalStateError("stores are written and outputs produced only while a record is handled")

