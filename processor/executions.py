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
from kafka_client.records import decode_value
from processor.create_request import CreateRequest
from processor.kafka_provider import KafkaExecutionProvider
from processor.metrics import ProcessorMetrics
from processor.outputs import Outputs
from processor.runtime.kv import KeyValueStore
from processor.runtime.task import Handler, TaskContext
from processor.state_codecs import ExecutionCodec, PendingAdmission, PendingAdmissionCodec, Waiter
from wire import records as translate
from wire import serde
from wire.topics import TopicNames

log = logging.getLogger(__name__)

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

    kind: translate.CauseKind
    id: str
    correlation_id: str | None
    at: datetime  # the input's own time, never the wall clock: reprocessing reproduces outputs


class ExecutionsProcessor:
    """The handlers of one executions task and the stores they use."""

    def __init__(self, context: TaskContext, topics: TopicNames, metrics: ProcessorMetrics) -> None:
        self._topics = topics
        self._outputs = Outputs(topics, context.journal)
        self._metrics = metrics
        self._provider = KafkaExecutionProvider(self._outputs)
        self._command = serde.codec("ExecutionCommand")
        self._decision = serde.codec("AdmissionDecision")
        self._order_event = serde.codec("OrderEvent")
        self.executions: KeyValueStore[Execution] = KeyValueStore(
            "executions", b"x/", ExecutionCodec(), context.store, context.journal, max_cached=50_000)
        self.admissions: KeyValueStore[PendingAdmission] = KeyValueStore(
            "admissions", b"a/", PendingAdmissionCodec(), context.store, context.journal, max_cached=50_000)

    @property
    def stores(self) -> tuple[KeyValueStore[Any], ...]:
        return (self.executions, self.admissions)

    def handlers(self) -> dict[str, Handler]:
        t = self._topics
        return {
            t.execution_commands: self.on_command,
            t.admission_decisions: self.on_admission_decision,
            t.order_events: self.on_order_event,
        }

    # -- commands from the gateway -----------------------------------------------------

    def on_command(self, message: Message) -> None:
        command = decode_value(self._command, message)
        if command["command_type"] == "CREATE_EXECUTION":
            self._create(command)
        else:
            self._cancel(command)

    def _create(self, command: dict[str, Any]) -> None:
        execution_id = command["execution_id"]
        waiter = Waiter(command["command_id"], command["correlation_id"])
        try:
            request = CreateRequest.from_command(command)
        except ValueError as invalid:  # pydantic ValidationError is a ValueError
            self._answer(waiter, "INVALID", execution_id=None,
                         problem=("Invalid execution request", str(invalid)))
            self._metrics.executions_created.labels("INVALID").inc()
            return
        existing = self.executions.get(execution_id)
        if existing is not None:
            same = existing.definition.request_hash == request.request_hash
            self._answer(waiter, "REPLAYED" if same else "CONFLICT", execution_id=existing.execution_id if same else None,
                         existing=None if same else existing.execution_id, execution=existing,
                         problem=None if same else _key_conflict(existing.execution_id))
            self._metrics.executions_created.labels("REPLAYED" if same else "CONFLICT").inc()
            return
        pending = self.admissions.get(execution_id)
        if pending is not None:
            if pending.request_hash == request.request_hash:
                self.admissions.put(execution_id, pending.with_waiter(waiter))  # answered with the decision
            else:
                self._answer(waiter, "CONFLICT", execution_id=None, existing=execution_id,
                             problem=_key_conflict(execution_id))
                self._metrics.executions_created.labels("CONFLICT").inc()
            return
        self.admissions.put(execution_id, PendingAdmission(
            command_id=command["command_id"],
            correlation_id=command["correlation_id"],
            issued_at=command["issued_at"].isoformat(),
            request=request,
            waiters=(waiter,),
        ))
        self._outputs.admission_request({
            "request_id": command["command_id"], "kind": "ADMIT",
            "proposal_id": request.proposal_id, "version_no": request.version_no,
            "execution_id": execution_id, "correlation_id": command["correlation_id"],
            "issued_at": command["issued_at"], "reserve_version": not request.policy.dry_run,
            "artifact": request.inline_artifact, "ended_state": None,
        })

    def on_admission_decision(self, message: Message) -> None:
        decision = decode_value(self._decision, message)
        execution_id = decision["execution_id"]
        pending = self.admissions.get(execution_id)
        if pending is None or pending.command_id != decision["request_id"]:
            raise UnknownExecution(f"no pending admission of {execution_id} for request {decision['request_id']}")
        self.admissions.delete(execution_id)
        waiters = pending.waiters
        if decision["outcome"] != "ADMITTED":
            outcome, title = _DECISION_RESULTS[decision["outcome"]]
            for waiter in waiters:
                self._answer(waiter, outcome, execution_id=None, existing=decision["existing_execution_id"],
                             problem=(title, decision["reason"]))
            self._metrics.executions_created.labels(outcome).inc(len(waiters))
            return
        request = pending.request
        cause = Cause("COMMAND", pending.command_id, pending.correlation_id, datetime.fromisoformat(pending.issued_at))
        try:
            artifact = translate.artifact_from_record(decision["artifact"])
            created = create_execution(execution_id, artifact, request.policy, cause.at,
                                       request.origin(cause.correlation_id), artifact_inline=request.artifact_inline)
        except (ArtifactInvalid, ArtifactNotExecutable) as refused:  # admission checked; stay safe anyway
            for waiter in waiters:
                self._answer(waiter, "INVALID", execution_id=None, problem=("Invalid proposal artifact", str(refused)))
            self._release_version(request.proposal_id, request.version_no, execution_id, cause, "REJECTED")
            return
        execution = self._publish(created, cause)
        self.executions.put(execution_id, execution)
        for index, waiter in enumerate(waiters):
            self._answer(waiter, "CREATED" if index == 0 else "REPLAYED", execution_id=execution_id,
                         execution=execution)
        self._metrics.executions_created.labels("CREATED").inc()
        self._metrics.executions_created.labels("REPLAYED").inc(len(waiters) - 1)
        log.info("execution created", extra={
            "execution_id": execution_id, "proposal_id": request.proposal_id, "version_no": request.version_no,
            "correlation_id": cause.correlation_id,
        })

    def _cancel(self, command: dict[str, Any]) -> None:
        execution_id = command["execution_id"]
        waiter = Waiter(command["command_id"], command["correlation_id"])
        execution = self.executions.get(execution_id)
        if execution is None:
            pending = self.admissions.get(execution_id) is not None
            self._answer(waiter, "CANCEL_REJECTED" if pending else "NOT_FOUND", execution_id=None,
                         problem=("Execution is still being admitted", "retry the cancel shortly") if pending
                         else ("Execution not found", f"no execution {execution_id}"))
            return
        cancel = translate.cancel_request_from_record(command)
        outcome = request_cancel(execution, cancel)
        nothing_to_cancel = any(a.code is AnomalyCode.NOTHING_TO_CANCEL for a in outcome.anomalies)
        cause = Cause("COMMAND", command["command_id"], command["correlation_id"], command["issued_at"])
        execution = self._publish(outcome, cause)
        self.executions.put(execution_id, execution)
        if nothing_to_cancel:
            self._answer(waiter, "CANCEL_REJECTED", execution_id=execution_id, execution=execution,
                         problem=("Nothing to cancel", f"execution {execution_id} is {execution.state.value}"))
        else:
            self._answer(waiter, "CANCEL_ACCEPTED", execution_id=execution_id, execution=execution)

    # -- order events from OMS adapters ------------------------------------------------

    def on_order_event(self, message: Message) -> None:
        event = translate.order_event_from_record(decode_value(self._order_event, message))
        execution = self.executions.get(event.execution_id)
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
            self.executions.put(execution.execution_id, self._publish(outcome, cause))

    # -- outputs of an outcome ---------------------------------------------------------

    def _publish(self, outcome: Outcome, cause: Cause) -> Execution:
        """State change for the outcome's log entry; instructions for what it released or asked to
        cancel; then the release marks of those tickets, each its own logged change."""
        execution = outcome.execution
        if outcome.entry is None:
            return execution
        seq = outcome.entry.seq
        self._outputs.state_change_spliced(translate.state_change_record(
            change_id=f"{execution.execution_id}/{seq}", sequence=seq, occurred_at=cause.at,
            correlation_id=cause.correlation_id, cause_kind=cause.kind, cause_id=cause.id, outcomes=outcome,
            with_events=False,
        ), execution)
        self._observe(outcome)
        if outcome.cancel_requests or outcome.tickets_to_submit:
            with self._provider.bound(execution, correlation_id=cause.correlation_id, issued_at=cause.at,
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
            execution = self._publish(mark_released(execution, ticket.ticket_id, cause.at), cause)
        if outcome.state_after in _ENDED_FREEING_VERSION and outcome.state_before not in _ENDED_FREEING_VERSION \
                and not execution.policy.dry_run:
            proposal = execution.definition.proposal
            self._release_version(proposal.proposal_id, proposal.version_no, execution.execution_id, cause,
                                  outcome.state_after.value)
        return execution

    def _release_version(self, proposal_id: str, version_no: int, execution_id: str, cause: Cause,
                         ended_state: str) -> None:
        self._outputs.admission_request({
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

    def _answer(self, waiter: Waiter, outcome: str, *, execution_id: str | None,
                existing: str | None = None, execution: Execution | None = None,
                problem: tuple[str, str | None] | None = None) -> None:
        self._outputs.command_result({
            "command_id": waiter.command_id,
            "correlation_id": waiter.correlation_id,
            "outcome": outcome,
            "execution_id": execution_id,
            "existing_execution_id": existing,
            "problem": None if problem is None else {"title": problem[0], "detail": problem[1]},
            "execution": None if execution is None else translate.snapshot_record(execution),
        })


def _key_conflict(execution_id: str) -> tuple[str, str]:
    return ("Idempotency key reused with a different request",
            f"the key already created execution {execution_id} from a different request body")
