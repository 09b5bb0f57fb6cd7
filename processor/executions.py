"""The executions subtopology (key execution_id): create, cancel, and fold OMS order events.

Create is idempotent by Idempotency-Key: the gateway derives execution_id from the key, so
every create with that key lands here, on the execution's own partition. The first one is
parked as a pending admission and sent to the proposal's partition (AdmissionRequest); when
the decision comes back the execution is created, the tickets without dependencies are
released, and every create that waited is answered. A replay with the same request hash gets
the existing execution; another hash is a conflict naming it.

Every log entry the domain appends becomes one ExecutionStateChange (sequence = the entry's
seq, so reprocessing after a crash reproduces the same records), and every ticket the domain
releases becomes a SUBMIT instruction marked released in the same transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from confluent_kafka import Message

from execution_domain import (
    ArtifactInvalid,
    ArtifactNotExecutable,
    Execution,
    ExecutionState,
    Outcome,
    apply_order_event,
    create_execution,
    mark_released,
    request_cancel,
)
from execution_domain.ticket_state import AnomalyCode, TicketState
from processor.create_request import CreateRequest
from processor.kafka_provider import KafkaExecutionProvider
from processor.metrics import ProcessorMetrics
from processor.outputs import Outputs
from processor.state_cache import StateCache
from processor.state_store import PartitionStore
from processor.transaction import ProcessingTransaction
from wire import records as translate
from wire import serde

log = logging.getLogger(__name__)

_COMMAND = serde.codec("ExecutionCommand")
_DECISION = serde.codec("AdmissionDecision")
_ORDER_EVENT = serde.codec("OrderEvent")

# An execution that ends here frees its proposal version for another execution.
_ENDED_FREEING_VERSION = frozenset({ExecutionState.REJECTED, ExecutionState.CANCELLED})

_DECISION_RESULTS = {
    "PROPOSAL_NOT_FOUND": ("NOT_FOUND", "Proposal version not found"),
    "NOT_EXECUTABLE": ("NOT_EXECUTABLE", "Proposal version is not executable"),
    "INVALID_ARTIFACT": ("INVALID", "Invalid proposal artifact"),
    "VERSION_IN_USE": ("CONFLICT", "Proposal version already being executed"),
}


class UnknownExecution(LookupError):
    """An input names an execution this processor does not have."""


@dataclass(frozen=True, slots=True)
class Cause:
    """The input being folded: what every output it causes refers to."""

    kind: str  # "COMMAND" or "ORDER_EVENT"
    id: str
    correlation_id: str | None
    at: datetime  # the input's own time, never the wall clock: reprocessing reproduces outputs


def _decode(codec: serde.Codec, message: Message) -> dict[str, Any]:
    return codec.decode(message.value(), topic=message.topic(), partition=message.partition(), offset=message.offset())


class _ImmutableJson:
    """JSON of immutable values (`to_primitive()`), encoded once per value.

    A log entry never changes once appended, nor does an execution's definition, and a ticket
    record is replaced (not changed) when its ticket moves: re-encoding all of them for every
    changed execution at every commit was the top of the profile after the state-change encoding
    (docs/benchmarks.md). Keyed by id(); each value holds its object, so that id cannot be reused
    while cached. Bounded: cleared when full, a miss costs one plain encoding.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._json: dict[int, tuple[Any, bytes]] = {}

    def __call__(self, value: Any) -> bytes:
        hit = self._json.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1]
        data = orjson.dumps(value.to_primitive())
        if len(self._json) >= self._limit:
            self._json.clear()
        self._json[id(value)] = (value, data)
        return data


_DEFINITION_JSON = _ImmutableJson(50_000)
_TICKET_RECORD_JSON = _ImmutableJson(50_000)
_LOG_ENTRY_JSON = _ImmutableJson(200_000)


def encode_stored_execution(execution: Execution) -> bytes:
    """The bytes of ``orjson.dumps(execution.to_primitive())``, built from cached JSON of the
    immutable parts (definition, ticket records, log entries) and the small rest encoded afresh."""
    definition = _DEFINITION_JSON(execution.definition)
    tickets = b",".join([_TICKET_RECORD_JSON(record) for record in execution.records.values()])
    entries = b",".join([_LOG_ENTRY_JSON(entry) for entry in execution.log])
    rest = orjson.dumps(execution.bookkeeping_primitive())  # '{"state":...}', never empty
    return b"".join((b'{"definition":', definition, b',"tickets":[', tickets, b'],"log":[', entries, b"],", rest[1:]))


def decode_stored_execution(raw: bytes) -> Execution:
    return Execution.from_primitive(orjson.loads(raw))


class ExecutionFolding:
    def __init__(self, outputs: Outputs, metrics: ProcessorMetrics) -> None:
        self._outputs = outputs
        self._metrics = metrics
        self._provider = KafkaExecutionProvider(outputs)
        self.executions: StateCache[Execution] = StateCache(b"x/", encode_stored_execution, decode_stored_execution)
        self.admissions: StateCache[dict[str, Any]] = StateCache(b"a/", orjson.dumps, orjson.loads)

    # -- commands from the gateway -----------------------------------------------------

    def on_command(self, message: Message, store: PartitionStore, txn: ProcessingTransaction) -> None:
        command = _decode(_COMMAND, message)
        if command["command_type"] == "CREATE_EXECUTION":
            self._create(command, store, txn)
        else:
            self._cancel(command, store, txn)

    def _create(self, command: dict[str, Any], store: PartitionStore, txn: ProcessingTransaction) -> None:
        execution_id = command["execution_id"]
        waiter = [command["command_id"], command["correlation_id"]]
        try:
            request = CreateRequest.from_command(command)
        except ValueError as invalid:  # pydantic ValidationError is a ValueError
            self._answer(txn, waiter, "INVALID", execution_id=None,
                         problem=("Invalid execution request", str(invalid)))
            self._metrics.executions_created.labels("INVALID").inc()
            return
        existing = self.executions.get(txn, store, execution_id)
        if existing is not None:
            same = existing.definition.request_hash == request.request_hash
            self._answer(txn, waiter, "REPLAYED" if same else "CONFLICT", execution_id=existing.execution_id if same else None,
                         existing=None if same else existing.execution_id, execution=existing,
                         problem=None if same else _key_conflict(existing.execution_id))
            self._metrics.executions_created.labels("REPLAYED" if same else "CONFLICT").inc()
            return
        pending = self.admissions.get(txn, store, execution_id)
        if pending is not None:
            if pending["request_hash"] == request.request_hash:
                pending = {**pending, "waiters": [*pending["waiters"], waiter]}
                self.admissions.put(store, execution_id, pending)  # answered with the decision
            else:
                self._answer(txn, waiter, "CONFLICT", execution_id=None, existing=execution_id,
                             problem=_key_conflict(execution_id))
                self._metrics.executions_created.labels("CONFLICT").inc()
            return
        self.admissions.put(store, execution_id, {
            "command_id": command["command_id"],
            "correlation_id": command["correlation_id"],
            "issued_at": command["issued_at"].isoformat(),
            "request": request.to_primitive(),
            "request_hash": request.request_hash,
            "waiters": [waiter],
        })
        self._outputs.admission_request(txn, {
            "request_id": command["command_id"], "kind": "ADMIT",
            "proposal_id": request.proposal_id, "version_no": request.version_no,
            "execution_id": execution_id, "correlation_id": command["correlation_id"],
            "issued_at": command["issued_at"], "reserve_version": not request.policy.dry_run,
            "artifact": request.inline_artifact, "ended_state": None,
        })

    def on_admission_decision(self, message: Message, store: PartitionStore, txn: ProcessingTransaction) -> None:
        decision = _decode(_DECISION, message)
        execution_id = decision["execution_id"]
        pending = self.admissions.get(txn, store, execution_id)
        if pending is None or pending["command_id"] != decision["request_id"]:
            raise UnknownExecution(f"no pending admission of {execution_id} for request {decision['request_id']}")
        self.admissions.delete(store, execution_id)
        waiters = pending["waiters"]
        if decision["outcome"] != "ADMITTED":
            outcome, title = _DECISION_RESULTS[decision["outcome"]]
            for waiter in waiters:
                self._answer(txn, waiter, outcome, execution_id=None, existing=decision["existing_execution_id"],
                             problem=(title, decision["reason"]))
            self._metrics.executions_created.labels(outcome).inc(len(waiters))
            return
        request = CreateRequest.from_primitive(pending["request"])
        cause = Cause("COMMAND", pending["command_id"], pending["correlation_id"],
                      datetime.fromisoformat(pending["issued_at"]))
        try:
            artifact = translate.artifact_from_record(decision["artifact"])
            created = create_execution(execution_id, artifact, request.policy, cause.at,
                                       request.origin(cause.correlation_id), artifact_inline=request.artifact_inline)
        except (ArtifactInvalid, ArtifactNotExecutable) as refused:  # admission checked; stay safe anyway
            for waiter in waiters:
                self._answer(txn, waiter, "INVALID", execution_id=None, problem=("Invalid proposal artifact", str(refused)))
            self._release_version(txn, request.proposal_id, request.version_no, execution_id, cause, "REJECTED")
            return
        execution = self._publish(created, cause, store, txn)
        self.executions.put(store, execution_id, execution)
        for index, waiter in enumerate(waiters):
            self._answer(txn, waiter, "CREATED" if index == 0 else "REPLAYED", execution_id=execution_id,
                         execution=execution)
        self._metrics.executions_created.labels("CREATED").inc()
        self._metrics.executions_created.labels("REPLAYED").inc(len(waiters) - 1)
        log.info("execution created", extra={
            "execution_id": execution_id, "proposal_id": request.proposal_id, "version_no": request.version_no,
            "correlation_id": cause.correlation_id,
        })

    def _cancel(self, command: dict[str, Any], store: PartitionStore, txn: ProcessingTransaction) -> None:
        execution_id = command["execution_id"]
        waiter = [command["command_id"], command["correlation_id"]]
        execution = self.executions.get(txn, store, execution_id)
        if execution is None:
            pending = self.admissions.get(txn, store, execution_id) is not None
            self._answer(txn, waiter, "CANCEL_REJECTED" if pending else "NOT_FOUND", execution_id=None,
                         problem=("Execution is still being admitted", "retry the cancel shortly") if pending
                         else ("Execution not found", f"no execution {execution_id}"))
            return
        cancel = translate.cancel_request_from_record(command)
        outcome = request_cancel(execution, cancel)
        nothing_to_cancel = any(a.code is AnomalyCode.NOTHING_TO_CANCEL for a in outcome.anomalies)
        cause = Cause("COMMAND", command["command_id"], command["correlation_id"], command["issued_at"])
        execution = self._publish(outcome, cause, store, txn)
        self.executions.put(store, execution_id, execution)
        if nothing_to_cancel:
            self._answer(txn, waiter, "CANCEL_REJECTED", execution_id=execution_id, execution=execution,
                         problem=("Nothing to cancel", f"execution {execution_id} is {execution.state.value}"))
        else:
            self._answer(txn, waiter, "CANCEL_ACCEPTED", execution_id=execution_id, execution=execution)

    # -- order events from OMS adapters ------------------------------------------------

    def on_order_event(self, message: Message, store: PartitionStore, txn: ProcessingTransaction) -> None:
        event = translate.order_event_from_record(_decode(_ORDER_EVENT, message))
        execution = self.executions.get(txn, store, event.execution_id)
        if execution is None:
            raise UnknownExecution(f"order event {event.event_id} names unknown execution {event.execution_id}")
        cause = Cause("ORDER_EVENT", event.event_id, execution.definition.origin.correlation_id, event.occurred_at)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("order event %s", event.event_type.value, extra={
                "execution_id": event.execution_id, "ticket_id": event.ticket_id, "event_id": event.event_id,
                "external_order_id": event.external_order_id, "correlation_id": cause.correlation_id,
            })
        outcome = apply_order_event(execution, event)
        if outcome.entry is not None:
            self.executions.put(store, execution.execution_id, self._publish(outcome, cause, store, txn))

    # -- outputs of an outcome ---------------------------------------------------------

    def _publish(self, outcome: Outcome, cause: Cause, store: PartitionStore, txn: ProcessingTransaction) -> Execution:
        """State change for the outcome's log entry; instructions for what it released or asked to
        cancel; then the release marks of those tickets, each its own logged change."""
        execution = outcome.execution
        if outcome.entry is None:
            return execution
        seq = outcome.entry.seq
        self._outputs.state_change_spliced(txn, translate.state_change_record(
            change_id=f"{execution.execution_id}/{seq}", sequence=seq, occurred_at=cause.at,
            correlation_id=cause.correlation_id, cause_kind=cause.kind, cause_id=cause.id, outcomes=outcome,
            with_events=False,
        ), execution)
        self._observe(outcome)
        if outcome.cancel_requests or outcome.tickets_to_submit:
            with self._provider.bound(txn, execution, correlation_id=cause.correlation_id, issued_at=cause.at,
                                      cause_id=cause.id) as provider:
                for ticket_id in outcome.cancel_requests:
                    provider.cancel_ticket(ticket_id)
                if outcome.tickets_to_submit:
                    provider.submit_tickets(execution.execution_id, outcome.tickets_to_submit)
        for ticket in outcome.tickets_to_submit:
            self._metrics.tickets_submitted.labels(ticket.ticket_type.value).inc()
            log.info("ticket released to the OMS", extra={
                "execution_id": execution.execution_id, "ticket_id": ticket.ticket_id,
                "correlation_id": cause.correlation_id,
            })
            execution = self._publish(mark_released(execution, ticket.ticket_id, cause.at), cause, store, txn)
        if outcome.state_after in _ENDED_FREEING_VERSION and outcome.state_before not in _ENDED_FREEING_VERSION \
                and not execution.policy.dry_run:
            proposal = execution.definition.proposal
            self._release_version(txn, proposal.proposal_id, proposal.version_no, execution.execution_id, cause,
                                  outcome.state_after.value)
        return execution

    def _release_version(self, txn: ProcessingTransaction, proposal_id: str, version_no: int, execution_id: str,
                         cause: Cause, ended_state: str) -> None:
        self._outputs.admission_request(txn, {
            "request_id": f"{execution_id}/release/{cause.id}", "kind": "RELEASE",
            "proposal_id": proposal_id, "version_no": version_no, "execution_id": execution_id,
            "correlation_id": cause.correlation_id or "", "issued_at": cause.at, "reserve_version": False,
            "artifact": None, "ended_state": ended_state,
        })

    def _observe(self, outcome: Outcome) -> None:
        """RFC §11 metrics and anomaly counts for one applied input."""
        execution = outcome.execution
        for anomaly in outcome.anomalies:
            self._metrics.anomalies.labels(anomaly.code.value).inc()
            log.warning("order event anomaly: %s", anomaly.reason, extra={
                "execution_id": execution.execution_id, "ticket_id": anomaly.ticket_id, "event_id": anomaly.event_id,
            })
        for change in outcome.changes:
            if change.from_state == change.to_state:
                continue
            record = execution.records[change.ticket_id]
            if change.to_state is TicketState.REJECTED:
                self._metrics.tickets_rejected.labels((record.reason or "unspecified")[:60]).inc()
            if record.submitted_at is not None and record.last_event_at is not None:
                stage = {TicketState.ACCEPTED: "ack", TicketState.FILLED: "fill"}.get(change.to_state)
                if stage is not None:
                    elapsed = (record.last_event_at - record.submitted_at).total_seconds() * 1000
                    self._metrics.execution_latency_ms.labels(stage).observe(max(elapsed, 0.0))

    def _answer(self, txn: ProcessingTransaction, waiter: list[str], outcome: str, *, execution_id: str | None,
                existing: str | None = None, execution: Execution | None = None,
                problem: tuple[str, str | None] | None = None) -> None:
        self._outputs.command_result(txn, {
            "command_id": waiter[0],
            "correlation_id": waiter[1],
            "outcome": outcome,
            "execution_id": execution_id,
            "existing_execution_id": existing,
            "problem": None if problem is None else {"title": problem[0], "detail": problem[1]},
            "execution": None if execution is None else translate.snapshot_record(execution),
        })


def _key_conflict(execution_id: str) -> tuple[str, str]:
    return ("Idempotency key reused with a different request",
            f"the key already created execution {execution_id} from a different request body")
