"""Pure domain core of the execution integration service (RFC-0014I).

Knows nothing of Kafka, HTTP or storage: no I/O, no clock reads, no randomness. Timestamps
come in with events and commands. See docs/domain.md for the rules and docs/glossary.md for
the names.

The processor's entry points::

    artifact = parse_artifact(raw)                                   # ArtifactInvalid(problems)
    outcome = create_execution(execution_id, artifact, policy, created_at, origin)
    outcome = mark_released(execution, ticket_id, released_at, external_order_id)
    outcome = apply_order_event(execution, event, history)
    outcome = request_cancel(execution, CancelRequest(...), history)
    execution = replay(entries)

Every ``Outcome`` carries the new ``execution`` (its head: tickets and counters, never the
history), the log ``entry`` (None for a duplicate), ``tickets_to_submit``, ``cancel_requests``,
the ``changed_tickets`` and what the ``history`` must ``remembered`` (fills and reports by id).
"""

from execution_domain.events import EventDetails, OrderEvent, OrderEventType
from execution_domain.execution import (
    ArtifactNotExecutable,
    CancelVerdict,
    Execution,
    Outcome,
    apply_input,
    apply_order_event,
    create_execution,
    mark_released,
    replay,
    request_cancel,
    tickets_awaiting_submission,
)
from execution_domain.execution_state import ExecutionState
from execution_domain.history import ExecutionHistory, InMemoryHistory, Remembered
from execution_domain.log import CancelRequest, LogEntry, LogRow, ReleaseMark
from execution_domain.policy import ExecutionPolicy, OnCriticalRejection
from execution_domain.proposal import (
    ArtifactInvalid,
    ProposalArtifact,
    ValidationProblem,
    parse_artifact,
    validate_artifact,
)
from execution_domain.request import Actor, RequestOrigin, execution_id_for_key, request_hash
from execution_domain.ticket_state import AnomalyCode, TicketState
from execution_domain.tickets import Ticket, generate_tickets

__all__ = [
    "Actor",
    "AnomalyCode",
    "ArtifactInvalid",
    "ArtifactNotExecutable",
    "CancelRequest",
    "CancelVerdict",
    "EventDetails",
    "Execution",
    "ExecutionHistory",
    "ExecutionPolicy",
    "ExecutionState",
    "InMemoryHistory",
    "LogEntry",
    "LogRow",
    "OnCriticalRejection",
    "OrderEvent",
    "OrderEventType",
    "Outcome",
    "ProposalArtifact",
    "ReleaseMark",
    "Remembered",
    "RequestOrigin",
    "Ticket",
    "TicketState",
    "ValidationProblem",
    "apply_input",
    "apply_order_event",
    "create_execution",
    "execution_id_for_key",
    "generate_tickets",
    "mark_released",
    "parse_artifact",
    "replay",
    "request_cancel",
    "request_hash",
    "tickets_awaiting_submission",
    "validate_artifact",
]
