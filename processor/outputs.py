"""Every record the processor publishes, encoded and keyed in one place.

An `Outputs` belongs to one task: its records go into the task's `RecordJournal` (so they leave
only if the input that caused them is handled in full). Two kinds go straight into the
transaction instead: the execution-snapshots table rows (once per execution per transaction, at
commit) and dead letters (in place of the effects of a record that failed).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from confluent_kafka import Message

from kafka_client.records import coordinates
from processor.metrics import ProcessorMetrics
from processor.runtime.journal import OutputRecord, RecordJournal
from processor.runtime.transaction import Headers, KafkaTransaction
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

    def snapshot(self, txn: KafkaTransaction, record: Record) -> None:
        """The execution-snapshots table's row of one execution: produced at commit, once per
        execution per transaction, straight into the transaction (it belongs to no single input)."""
        txn.produce(self._topics.execution_snapshots, self._snapshot.encode(record),
                    key=record["execution_id"].encode())

    def ticket_instruction(self, record: Record, ticket_id: str) -> None:
        # Keyed by ticket_id: an OMS deduplicates by it, and SUBMIT precedes CANCEL in one partition.
        self._emit(self._topics.trade_tickets, self._ticket_instruction.encode(record), ticket_id,
                   record["correlation_id"])

    def _emit(self, topic: str, value: bytes, key: str, correlation_id: str | None) -> None:
        self._journal.produce(OutputRecord(topic, value, key.encode(), _headers(correlation_id)))


class DeadLetters:
    """The original record, untouched, plus why it could not be processed: straight into the
    transaction, in place of the record's own effects."""

    def __init__(self, topic: str, instance_id: str, metrics: ProcessorMetrics, codec: ValueCodec) -> None:
        self._topic = topic
        self._instance_id = instance_id
        self._metrics = metrics
        self._codec = codec

    def dead_letter(self, txn: KafkaTransaction, message: Message, error: BaseException, *, bug: bool) -> None:
        error_type = type(error).__name__
        reason = str(error) or error_type
        if bug:
            reason = f"handler error (a bug, not bad input): {error!r}"
        self._metrics.dead_letters.labels(error_type).inc()
        if not bug:
            log.warning("dead-lettered %s: %s", error_type, reason, extra={
                "topic": message.topic(), "partition": message.partition(), "offset": message.offset(),
            }, exc_info=not isinstance(error, (ValueError, LookupError)))
        topic, partition, offset = coordinates(message)
        original_headers = cast(list[tuple[str, bytes]], message.headers() or [])
        record = {
            "original_topic": topic,
            "original_partition": partition,
            "original_offset": offset,
            "original_key": message.key(),
            "original_value": message.value(),
            "original_headers": [{"key": key, "value": value} for key, value in original_headers],
            "reason": reason,
            "error_type": error_type,
            "failed_at": datetime.now(UTC),
            "instance_id": self._instance_id,
        }
        headers: Headers = [
            ("dlt.original.topic", topic.encode()),
            ("dlt.original.partition", str(partition).encode()),
            ("dlt.original.offset", str(offset).encode()),
            ("dlt.reason", reason.encode()[:1000]),
            ("dlt.error.type", error_type.encode()),
        ]
        txn.produce(self._topic, self._codec.encode(record), key=message.key(), headers=headers)
