"""Every record the processor publishes, encoded and keyed in one place.

An `Outputs` belongs to one task: its records go into the task's `RecordJournal` (so they leave
only if the input that caused them is handled in full). Two kinds go straight into the
transaction instead: the execution-snapshots table rows (once per execution per transaction, at
commit) and dead letters (in place of the effects of a record that failed).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from confluent_kafka import Message

from kafka_client.records import coordinates
from processor.metrics import ProcessorMetrics
from processor.runtime.journal import OutputRecord, RecordJournal
from processor.runtime.task import OutputRefused
from processor.runtime.transaction import DeliveryCallback, Headers, KafkaTransaction
from wire.formats import ValueCodec
from wire.topics import CORRELATION_ID_HEADER, TopicNames

log = logging.getLogger(__name__)

Record = dict[str, Any]


def _headers(correlation_id: str | None) -> Headers | None:
    return [(CORRELATION_ID_HEADER, correlation_id.encode())] if correlation_id else None


Codecs = Mapping[str, ValueCodec]  # topic kind -> its codec (wire.formats.WireFormats.topic_codecs)


class Outputs:
    """The records one task publishes, through its journal, each in its topic's framing."""

    def __init__(self, topics: TopicNames, journal: RecordJournal, codecs: Codecs) -> None:
        self._topics = topics
        self._journal = journal
        self._admission_request = codecs["admission-requests"]
        self._admission_decision = codecs["admission-decisions"]
        self._command_result = codecs["command-results"]
        self._ticket_instruction = codecs["trade-tickets"]
        self._state_change = codecs["execution-state-changes"]
        self._snapshot = codecs["execution-snapshots"]

    def admission_request(self, record: Record) -> None:
        self._emit(self._topics.admission_requests, self._admission_request.encode(record),
                   record["proposal_id"], record["correlation_id"])

    def admission_decision(self, record: Record) -> None:
        self._emit(self._topics.admission_decisions, self._admission_decision.encode(record),
                   record["execution_id"], record["correlation_id"])

    def command_result(self, record: Record) -> None:
        self._emit(self._topics.command_results, self._command_result.encode(record),
                   record["command_id"], record["correlation_id"])

    def state_change(self, record: Record) -> None:
        self._emit(self._topics.execution_state_changes, self._state_change.encode(record),
                   record["execution_id"], record["correlation_id"])

    def snapshot(self, txn: KafkaTransaction, record: Record, *, on_delivery: DeliveryCallback | None = None) -> None:
        """The execution-snapshots table's row of one execution: produced at commit, once per
        execution per transaction, straight into the transaction (it belongs to no single input)."""
        txn.produce(self._topics.execution_snapshots, self._snapshot.encode(record),
                    key=record["execution_id"].encode(), on_delivery=on_delivery)

    def ticket_instruction(self, record: Record, ticket_id: str) -> None:
        # Keyed by ticket_id: an OMS deduplicates by it, and SUBMIT precedes CANCEL in one partition.
        self._emit(self._topics.trade_tickets, self._ticket_instruction.encode(record), ticket_id,
                   record["correlation_id"])

    def _emit(self, topic: str, value: bytes, key: str, correlation_id: str | None) -> None:
        self._journal.produce(OutputRecord(topic, value, key.encode(), _headers(correlation_id)))


class DeadLetters:
    """The original record plus why it could not be processed: straight into the transaction, in
    place of the record's own effects. Bounded whatever the input: the original value is copied up
    to `value_limit` bytes (else referenced by topic/partition/offset, size and sha256), the key up
    to 4 KiB (else replaced by its sha256), headers up to 16 KiB, the reason to 2,000 characters; a
    `minimal` dead letter (when a full one was refused) keeps only the reference and the reason."""

    KEY_LIMIT = 4 * 1024
    HEADERS_LIMIT = 16 * 1024
    REASON_LIMIT = 2_000

    def __init__(self, topic: str, instance_id: str, metrics: ProcessorMetrics, codec: ValueCodec,
                 value_limit: int = 256 * 1024) -> None:
        self._topic = topic
        self._instance_id = instance_id
        self._metrics = metrics
        self._codec = codec
        self._value_limit = value_limit

    def dead_letter(self, txn: KafkaTransaction, message: Message, error: BaseException, *, bug: bool,
                    minimal: bool = False, on_delivery: DeliveryCallback | None = None) -> None:
        error_type = type(error).__name__
        reason = str(error) or error_type
        if bug:
            reason = f"handler error (a bug, not bad input): {error!r}"
        reason = bounded_text(reason, self.REASON_LIMIT)
        self._metrics.dead_letters.labels(error_type).inc()
        topic, partition, offset = coordinates(message)
        if not bug:
            log.warning("dead-lettered %s: %s", error_type, reason[:500], extra={
                "topic": topic, "partition": partition, "offset": offset,
            }, exc_info=not isinstance(error, (ValueError, LookupError, OutputRefused)))
        value = message.value()
        keep_value = value is not None and not minimal and len(value) <= self._value_limit
        headers: list[dict[str, object]] = []
        if not minimal:
            room = self.HEADERS_LIMIT
            for name, header_value in cast(list[tuple[str, bytes | None]], message.headers() or []):
                size = len(name) + len(header_value or b"")
                if size > room:
                    break
                room -= size
                headers.append({"key": name, "value": header_value})
        key = message.key()
        if key is not None and len(key) > self.KEY_LIMIT:
            key = b"sha256:" + hashlib.sha256(key).hexdigest().encode()
        record = {
            "original_topic": topic,
            "original_partition": partition,
            "original_offset": offset,
            "original_key": key,
            "original_value": value if keep_value else None,
            "original_headers": headers,
            "reason": reason,
            "error_type": error_type,
            "failed_at": datetime.now(UTC),
            "instance_id": self._instance_id,
            "original_value_size": None if value is None else len(value),
            "original_value_sha256": None if value is None else hashlib.sha256(value).hexdigest(),
            "original_value_truncated": value is not None and not keep_value,
        }
        dlt_headers: Headers = [
            ("dlt.original.topic", topic.encode()),
            ("dlt.original.partition", str(partition).encode()),
            ("dlt.original.offset", str(offset).encode()),
            ("dlt.reason", reason.encode()[:1000]),
            ("dlt.error.type", error_type.encode()),
        ]
        txn.produce(self._topic, self._codec.encode(record), key=key, headers=dlt_headers, on_delivery=on_delivery)


def bounded_text(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, saying so."""
    if len(text) <= limit:
        return text
    note = f" ... (cut: {len(text):,} characters)"
    return text[: limit - len(note)] + note
