"""The topics the service reads or writes: default name, value schema, and which field is the key.

Names are defaults; the processor and gateway make them configurable. Keys are the UTF-8
bytes of the key field (dead letters reuse the original key bytes), so partitioning does
not depend on Avro and tools show readable keys.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Optional header carrying the record's correlation_id (UTF-8), for tracing without decoding.
CORRELATION_ID_HEADER = "correlation_id"


@dataclass(frozen=True)
class Topic:
    kind: str  # stable identifier, also accepted by wire.serde in place of the schema name
    default_name: str
    value_schema: str  # simple name of the top-level record in schemas/
    key_field: str  # dotted path into the value record
    internal: bool = False  # written and read only by the processor itself
    # Documentation (docs/wire.md, the AsyncAPI document of wire.asyncapi): who writes and reads
    # the topic, and what delivery a reader can rely on.
    producers: tuple[str, ...] = ()
    consumers: tuple[str, ...] = ()
    delivery: str = ""

    def key(self, record: Mapping[str, Any]) -> bytes | None:
        """The message key for a value record."""
        value: Any = record
        for part in self.key_field.split("."):
            value = value[part]
        if value is None or isinstance(value, bytes):
            return value
        return str(value).encode("utf-8")


_EXACTLY_ONCE = ("exactly once: written in the processor's Kafka transactions, so a read_committed reader sees "
                 "each record once and never one of an aborted attempt")
APPROVED_PROPOSALS = Topic(
    "approved-proposals", "approved-proposals", "ApprovedProposal", "proposal_id",
    producers=("upstream proposal system (RFC-0014E)",), consumers=("processor",),
    delivery="at least once; the processor stores each (proposal_id, version_no) once and dead-letters a second "
             "record of a stored version with another hash")
EXECUTION_COMMANDS = Topic(
    "execution-commands", "execution-commands", "ExecutionCommand", "execution_id",
    producers=("gateway",), consumers=("processor",),
    delivery="at least once (idempotent producer); a repeated create is answered REPLAYED, a repeated cancel is "
             "deduplicated by command_id")
COMMAND_RESULTS = Topic(
    "command-results", "command-results", "CommandResult", "command_id",
    producers=("processor",), consumers=("gateway",), delivery=_EXACTLY_ONCE)
TRADE_TICKETS = Topic(
    "trade-tickets", "trade-tickets", "TicketInstruction", "ticket.ticket_id",
    producers=("processor",), consumers=("OMS adapters", "mock OMS"),
    delivery=_EXACTLY_ONCE + "; a ticket is released (SUBMIT) once; an OMS deduplicates by ticket_id")
ORDER_EVENTS = Topic(
    "order-events", "order-events", "OrderEvent", "execution_id",
    producers=("OMS adapters", "gateway webhook", "mock OMS"), consumers=("processor",),
    delivery="at least once, in any order; the processor applies each report once (event_id, fill_id) and "
             "ignores stale ones")
EXECUTION_STATE_CHANGES = Topic(
    "execution-state-changes", "execution-state-changes", "ExecutionStateChange", "execution_id",
    producers=("processor",), consumers=("gateway read model", "status consumers"),
    delivery=_EXACTLY_ONCE + "; sequence is per execution, from 1, without gaps; each change carries what "
             "changed (DELTA): fold them in sequence order to rebuild the execution (docs/wire.md)")
# The latest summary of each execution (every ticket, counters, no log): compacted, keyed like the
# state changes, written at most once per execution per transaction: the table view of the stream.
EXECUTION_SNAPSHOTS = Topic(
    "execution-snapshots", "execution-snapshots", "ExecutionSnapshot", "execution_id",
    producers=("processor",), consumers=("gateway read model", "status consumers"),
    delivery=_EXACTLY_ONCE + "; compacted: the latest row per execution, written at most once per execution per "
             "transaction; last_sequence says which state change it reflects")
DEAD_LETTERS = Topic(
    "dead-letters", "dead-letters", "DeadLetter", "original_key",
    producers=("processor",), consumers=("operators",),
    delivery=_EXACTLY_ONCE + ", in the transaction that consumed the bad input")
# Internal: the processor's admission of new executions (see docs/design.md). Their default
# names are prefixed with the processor's application id at run time.
ADMISSION_REQUESTS = Topic(
    "admission-requests", "admission-requests", "AdmissionRequest", "proposal_id", True,
    producers=("processor",), consumers=("processor",), delivery=_EXACTLY_ONCE)
ADMISSION_DECISIONS = Topic(
    "admission-decisions", "admission-decisions", "AdmissionDecision", "execution_id", True,
    producers=("processor",), consumers=("processor",), delivery=_EXACTLY_ONCE)

TOPICS: tuple[Topic, ...] = (
    APPROVED_PROPOSALS,
    EXECUTION_COMMANDS,
    COMMAND_RESULTS,
    TRADE_TICKETS,
    ORDER_EVENTS,
    EXECUTION_STATE_CHANGES,
    EXECUTION_SNAPSHOTS,
    DEAD_LETTERS,
    ADMISSION_REQUESTS,
    ADMISSION_DECISIONS,
)
BY_KIND: Mapping[str, Topic] = {topic.kind: topic for topic in TOPICS}


@dataclass(frozen=True)
class TopicNames:
    approved_proposals: str
    execution_commands: str
    command_results: str
    trade_tickets: str
    order_events: str
    execution_state_changes: str
    execution_snapshots: str
    dead_letters: str
    admission_requests: str
    admission_decisions: str
    proposals_changelog: str
    executions_changelog: str

    @classmethod
    def defaults(cls, application_id: str, environ: Mapping[str, str] = os.environ) -> TopicNames:
        names: dict[str, str] = {}
        for topic in TOPICS:
            field = topic.kind.replace("-", "_")
            default = f"{application_id}.{topic.default_name}" if topic.internal else topic.default_name
            names[field] = environ.get(f"TOPIC_{field.upper()}", default)
        for store in ("proposals", "executions"):
            field = f"{store}_changelog"
            names[field] = environ.get(f"TOPIC_{field.upper()}", f"{application_id}.{store}-changelog")
        return cls(**names)
