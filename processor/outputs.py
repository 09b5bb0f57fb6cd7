"""Every record the processor publishes, encoded and keyed in one place.

All of it goes through the current `ProcessingTransaction`, so it becomes visible to
`read_committed` readers exactly when the inputs that caused it are committed.
"""

from __future__ import annotations

from datetime import datetime

from confluent_kafka import Message

from execution_domain import Execution
from processor.lifecycle_encoding import EncodedLifecycleCache
from processor.transaction import Headers, ProcessingTransaction
from wire import serde
from wire.topics import CORRELATION_ID_HEADER, TopicNames

_ADMISSION_REQUEST = serde.codec("AdmissionRequest")
_ADMISSION_DECISION = serde.codec("AdmissionDecision")
_COMMAND_RESULT = serde.codec("CommandResult")
_STATE_CHANGE = serde.codec("ExecutionStateChange")
_TICKET_INSTRUCTION = serde.codec("TicketInstruction")
_DEAD_LETTER = serde.codec("DeadLetter")


_LIFECYCLE = EncodedLifecycleCache()


def _check_splice_layout() -> None:
    """The splice below relies on the schema's field order: the snapshot is the state change's
    last field, and its lifecycle ``events`` array is followed only by ``anomaly_count`` (an int).
    A schema change that breaks this must fail here, at import, not corrupt records."""
    fields = serde.load().compile("ExecutionStateChange").parsed["fields"]
    snapshot = fields[-1]["type"]
    tail = [(f["name"], f["type"]) for f in snapshot["fields"][-2:]] if fields[-1]["name"] == "execution" else []
    if len(tail) != 2 or tail[0][0] != "events" or tail[1] != ("anomaly_count", "int"):
        raise RuntimeError("ExecutionStateChange layout changed: encode_state_change_spliced needs updating")


_check_splice_layout()


def encode_state_change_spliced(record: dict, execution: Execution) -> bytes:
    """An ExecutionStateChange record built with ``with_events=False``, encoded with the snapshot's
    lifecycle rows spliced in already encoded (`EncodedLifecycleCache`): the bytes of the plain
    encoding of the record with its events."""
    count, rows = _LIFECYCLE.encoded(execution)
    tail = serde.zigzag_varint(record["execution"]["anomaly_count"])
    return serde.splice_array_before_tail(_STATE_CHANGE.encode(record), tail, count, rows)


def _headers(correlation_id: str | None) -> Headers | None:
    return [(CORRELATION_ID_HEADER, correlation_id.encode())] if correlation_id else None


class Outputs:
    def __init__(self, topics: TopicNames, instance_id: str) -> None:
        self._topics = topics
        self._instance_id = instance_id

    def admission_request(self, txn: ProcessingTransaction, record: dict) -> None:
        txn.produce(
            self._topics.admission_requests, _ADMISSION_REQUEST.encode(record),
            key=record["proposal_id"].encode(), headers=_headers(record["correlation_id"]),
        )

    def admission_decision(self, txn: ProcessingTransaction, record: dict) -> None:
        txn.produce(
            self._topics.admission_decisions, _ADMISSION_DECISION.encode(record),
            key=record["execution_id"].encode(), headers=_headers(record["correlation_id"]),
        )

    def command_result(self, txn: ProcessingTransaction, record: dict) -> None:
        txn.produce(
            self._topics.command_results, _COMMAND_RESULT.encode(record),
            key=record["command_id"].encode(), headers=_headers(record["correlation_id"]),
        )

    def state_change(self, txn: ProcessingTransaction, record: dict) -> None:
        txn.produce(
            self._topics.execution_state_changes, _STATE_CHANGE.encode(record),
            key=record["execution_id"].encode(), headers=_headers(record["correlation_id"]),
        )

    def state_change_spliced(self, txn: ProcessingTransaction, record: dict, execution: Execution) -> None:
        """A state change built with ``with_events=False`` (see `encode_state_change_spliced`)."""
        txn.produce(
            self._topics.execution_state_changes, encode_state_change_spliced(record, execution),
            key=record["execution_id"].encode(), headers=_headers(record["correlation_id"]),
        )

    def ticket_instruction(self, txn: ProcessingTransaction, record: dict, ticket_id: str) -> None:
        # Keyed by ticket_id: an OMS deduplicates by it, and SUBMIT precedes CANCEL in one partition.
        txn.produce(
            self._topics.trade_tickets, _TICKET_INSTRUCTION.encode(record),
            key=ticket_id.encode(), headers=_headers(record["correlation_id"]),
        )

    def dead_letter(self, txn: ProcessingTransaction, message: Message, reason: str, error_type: str,
                    failed_at: datetime) -> None:
        """The original record, untouched, plus why it could not be processed."""
        original_headers = message.headers() or []
        record = {
            "original_topic": message.topic(),
            "original_partition": message.partition(),
            "original_offset": message.offset(),
            "original_key": message.key(),
            "original_value": message.value(),
            "original_headers": [{"key": key, "value": value} for key, value in original_headers],
            "reason": reason,
            "error_type": error_type,
            "failed_at": failed_at,
            "instance_id": self._instance_id,
        }
        headers: Headers = [
            ("dlt.original.topic", message.topic().encode()),
            ("dlt.original.partition", str(message.partition()).encode()),
            ("dlt.original.offset", str(message.offset()).encode()),
            ("dlt.reason", reason.encode()[:1000]),
            ("dlt.error.type", error_type.encode()),
        ]
        txn.produce(self._topics.dead_letters, _DEAD_LETTER.encode(record), key=message.key(), headers=headers)
