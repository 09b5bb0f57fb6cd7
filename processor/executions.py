"""The executions subtopology (key execution_id): create, cancel, and fold OMS order events.

Create is idempotent by Idempotency-Key: the gateway derives execution_id from the key, so
every create with that key lands here, on the execution's own partition. The first one is
parked as a pending admission and sent to the proposal's partition (AdmissionRequest); when
the decision comes back the execution is created, the tickets without dependencies are
released, and every create that waited is answered. A replay with the same request hash gets
the existing execution; another hash is a conflict naming it.

Every log entry the domain returns becomes one ExecutionStateChange carrying only what changed
(sequence = the entry's seq, so reprocessing after a crash reproduces the same records) and is
stored once under its own key; every ticket the domain releases becomes a SUBMIT instruction
marked released in the same transaction. The execution's head (each ticket's state, counters)
is one value; what the fold looks up from the past (fills, reports, handled commands) is stored
under keys by id (`StoredHistory`). At each commit the execution-snapshots table gets the latest
summary of every execution the transaction changed, once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from confluent_kafka import Message

from execution_domain import (
    ArtifactInvalid,
    ArtifactNotExecutable,
    CancelVerdict,
    Execution,
    ExecutionState,
    LogEntry,
    Outcome,
    Remembered,
    apply_order_event,
    create_execution,
    mark_released,
    request_cancel,
)
from execution_domain.definition import ExecutionDefinition
from execution_domain.events import ReportKey
from execution_domain.fills import Fill
from execution_domain.history import UnroutedKey
from execution_domain.ticket_state import TicketState
from kafka_client.records import decode_value
from processor.create_request import CreateRequest
from processor.kafka_provider import KafkaExecutionProvider
from processor.metrics import ProcessorMetrics
from processor.outputs import Codecs, Outputs
from processor.runtime.kv import KeyValueStore
from processor.runtime.task import Handler, Punctuation, TaskContext
from processor.runtime.transaction import DeliveryCallback, KafkaTransaction
from processor.state_codecs import (
    DefinitionCodec,
    FillCodec,
    HeadCodec,
    LegacyExecution,
    LogEntryCodec,
    MarkerCodec,
    PendingAdmission,
    PendingAdmissionCodec,
    ReportsCodec,
    Waiter,
)
from wire import records as translate
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


class ExecutionStores:
    """The typed stores of one executions task (key layout: `processor.state_codecs`)."""

    def __init__(self, context: TaskContext) -> None:
        store, journal, budget = context.store, context.journal, context.cache_bytes
        # The decoded heads and definitions are cached within the task's byte budget; write-once
        # facts looked up by id (log entries, fills, reports, commands) are not: a cache would rarely hit.
        self.definitions: KeyValueStore[ExecutionDefinition] = KeyValueStore(
            "definitions", b"d/", DefinitionCodec(), store, journal, max_cached_bytes=budget * 45 // 100)
        self.heads: KeyValueStore[Execution] = KeyValueStore(
            "heads", b"x/", HeadCodec(self.definitions.get), store, journal, max_cached_bytes=budget * 45 // 100)
        self.entries: KeyValueStore[LogEntry] = KeyValueStore(
            "log", b"l/", LogEntryCodec(self.definitions.get), store, journal, max_cached_bytes=0)
        self.fills: KeyValueStore[Fill] = KeyValueStore("fills", b"f/", FillCodec(), store, journal, max_cached_bytes=0)
        self.reports: KeyValueStore[tuple[ReportKey, ...]] = KeyValueStore(
            "reports", b"e/", ReportsCodec(), store, journal, max_cached_bytes=0)
        self.unrouted: KeyValueStore[tuple[ReportKey, ...]] = KeyValueStore(
            "unrouted", b"u/", ReportsCodec(), store, journal, max_cached_bytes=0)
        self.commands: KeyValueStore[bool] = KeyValueStore(
            "commands", b"c/", MarkerCodec(), store, journal, max_cached_bytes=0)
        self.admissions: KeyValueStore[PendingAdmission] = KeyValueStore(
            "admissions", b"a/", PendingAdmissionCodec(), store, journal, max_cached_bytes=budget // 10)

    @property
    def all(self) -> tuple[KeyValueStore[Any], ...]:
        return (self.definitions, self.heads, self.entries, self.fills, self.reports, self.unrouted, self.commands,
                self.admissions)

    def settle(self, execution: Execution) -> None:
        """A complete execution (every ticket terminal) is rarely read again (a late duplicate
        report at most): its decoded head and definition leave the caches, so memory follows the
        executions still working, not every execution seen (the soak in docs/benchmarks.md)."""
        if execution.is_complete:
            self.heads.uncache(execution.execution_id)
            self.definitions.uncache(execution.execution_id)

    def load(self, execution_id: str) -> Execution | None:
        """The execution's head (an execution stored whole by the first release is split up first)."""
        try:
            return self.heads.get(execution_id)
        except LegacyExecution as legacy:
            parts = legacy.parts
            execution = parts.execution
            self.definitions.put(execution_id, execution.definition)
            for entry in parts.entries:
                self.entries.put(entry_key(execution_id, entry.seq), entry)
            history = StoredHistory(self, execution_id)
            history.remember(Remembered(parts.fills, parts.reports, parts.unrouted, parts.commands))
            self.heads.put(execution_id, execution)
            log.info("execution stored in the first release's layout split into pieces",
                     extra={"execution_id": execution_id})
            return execution


def entry_key(execution_id: str, seq: int) -> str:
    return f"{execution_id}/{seq:010d}"


class StoredHistory:
    """`ExecutionHistory` of one execution over its task's stores: each fact by its own key."""

    def __init__(self, stores: ExecutionStores, execution_id: str) -> None:
        self._stores = stores
        self._id = execution_id

    def fill(self, ticket_id: str, fill_id: str) -> Fill | None:
        return self._stores.fills.get(f"{self._id}/{ticket_id}/{fill_id}")

    def reports(self, ticket_id: str, event_id: str) -> tuple[ReportKey, ...]:
        return self._stores.reports.get(f"{self._id}/{ticket_id}/{event_id}") or ()

    def unrouted(self, key: UnroutedKey) -> tuple[ReportKey, ...]:
        return self._stores.unrouted.get(_unrouted_key(self._id, key)) or ()

    def command_handled(self, command_id: str) -> bool:
        return self._stores.commands.get(f"{self._id}/{command_id}") is not None

    def remember(self, remembered: Remembered) -> None:
        stores = self._stores
        for ticket_id, fill in remembered.fills:
            stores.fills.put(f"{self._id}/{ticket_id}/{fill.fill_id}", fill)
        for ticket_id, event_id, reports in remembered.reports:
            stores.reports.put(f"{self._id}/{ticket_id}/{event_id}", reports)
        for key, reports in remembered.unrouted:
            stores.unrouted.put(_unrouted_key(self._id, key), reports)
        for command_id in remembered.commands:
            stores.commands.put(f"{self._id}/{command_id}", True)


def _unrouted_key(execution_id: str, key: UnroutedKey) -> str:
    # The named execution and ticket come from outside: a separator no id uses keeps keys unambiguous.
    return "\x1f".join((execution_id, *key))


class ExecutionsProcessor:
    """The handlers of one executions task and the stores they use."""

    def __init__(self, context: TaskContext, topics: TopicNames, metrics: ProcessorMetrics, codecs: Codecs) -> None:
        self._topics = topics
        self._outputs = Outputs(topics, context.journal, codecs)
        self._journal = context.journal
        self._metrics = metrics
        self._provider = KafkaExecutionProvider(self._outputs)
        self._command = codecs["execution-commands"]
        self._decision = codecs["admission-decisions"]
        self._order_event = codecs["order-events"]
        self.state = ExecutionStores(context)

    @property
    def stores(self) -> tuple[KeyValueStore[Any], ...]:
        return self.state.all

    def handlers(self) -> dict[str, Handler]:
        t = self._topics
        return {
            t.execution_commands: self.on_command,
            t.admission_decisions: self.on_admission_decision,
            t.order_events: self.on_order_event,
        }

    def punctuations(self) -> tuple[Punctuation, ...]:
        """Nothing is done without an input record."""
        return ()

    def prepare_commit(self, txn: KafkaTransaction, refused: Callable[[bytes], DeliveryCallback]) -> None:
        """The execution-snapshots table: the latest summary of each execution this transaction
        changed, once (a compacted topic keyed by execution_id: the KTable of executions)."""
        for key, execution in self.state.heads.written():
            self._outputs.snapshot(txn, translate.snapshot_record(execution, content="SUMMARY"),
                                   on_delivery=refused(self.state.heads.prefix + key.encode()))

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
        existing = self.state.load(execution_id)
        if existing is not None:
            same = existing.definition.request_hash == request.request_hash
            self._answer(waiter, "REPLAYED" if same else "CONFLICT", execution_id=existing.execution_id if same else None,
                         existing=None if same else existing.execution_id, execution=existing,
                         problem=None if same else _key_conflict(existing.execution_id))
            self._metrics.executions_created.labels("REPLAYED" if same else "CONFLICT").inc()
            return
        pending = self.state.admissions.get(execution_id)
        if pending is not None:
            if pending.request_hash == request.request_hash:
                self.state.admissions.put(execution_id, pending.with_waiter(waiter))  # answered with the decision
            else:
                self._answer(waiter, "CONFLICT", execution_id=None, existing=execution_id,
                             problem=_key_conflict(execution_id))
                self._metrics.executions_created.labels("CONFLICT").inc()
            return
        self.state.admissions.put(execution_id, PendingAdmission(
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
        pending = self.state.admissions.get(execution_id)
        if pending is None or pending.command_id != decision["request_id"]:
            raise UnknownExecution(f"no pending admission of {execution_id} for request {decision['request_id']}")
        self.state.admissions.delete(execution_id)
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
            # The decision carries the create's trace context (passed on by every hop): remember it
            # for the reports that will come without one.
            trace_parent = next((value.decode() for name, value in self._journal.trace_headers
                                 if name == "traceparent"), None)
            created = create_execution(execution_id, artifact, request.policy, cause.at,
                                       request.origin(cause.correlation_id, trace_parent),
                                       artifact_inline=request.artifact_inline, attempt=decision["attempt"])
        except (ArtifactInvalid, ArtifactNotExecutable) as refused:  # admission checked; stay safe anyway
            for waiter in waiters:
                self._answer(waiter, "INVALID", execution_id=None, problem=("Invalid proposal artifact", str(refused)))
            self._release_version(request.proposal_id, request.version_no, execution_id, cause, "REJECTED")
            return
        self.state.definitions.put(execution_id, created.execution.definition)
        execution = self._publish(created, cause, StoredHistory(self.state, execution_id))
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
        execution = self.state.load(execution_id)
        if execution is None:
            pending = self.state.admissions.get(execution_id) is not None
            self._answer(waiter, "CANCEL_REJECTED" if pending else "NOT_FOUND", execution_id=None,
                         problem=("Execution is still being admitted", "retry the cancel shortly") if pending
                         else ("Execution not found", f"no execution {execution_id}"))
            return
        history = StoredHistory(self.state, execution_id)
        outcome = request_cancel(execution, translate.cancel_request_from_record(command), history)
        cause = Cause("COMMAND", command["command_id"], command["correlation_id"], command["issued_at"])
        execution = self._publish(outcome, cause, history)
        if outcome.cancel is CancelVerdict.NOTHING_TO_CANCEL:
            self._answer(waiter, "CANCEL_REJECTED", execution_id=execution_id, execution=execution,
                         problem=("Nothing to cancel", f"execution {execution_id} is complete ({execution.state.value}): "
                                  "every ticket is filled, cancelled or rejected"))
        else:  # ACCEPTED, or ALREADY_PENDING / ALREADY_HANDLED: answered like the first cancel
            self._answer(waiter, "CANCEL_ACCEPTED", execution_id=execution_id, execution=execution)
        self.state.settle(execution)

    # -- order events from OMS adapters ------------------------------------------------

    def on_order_event(self, message: Message) -> None:
        event = translate.order_event_from_record(decode_value(self._order_event, message))
        execution = self.state.load(event.execution_id)
        if execution is None:
            raise UnknownExecution(f"order event {event.event_id} names unknown execution {event.execution_id}")
        origin = execution.definition.origin
        cause = Cause("ORDER_EVENT", event.event_id, origin.correlation_id, event.occurred_at)
        if not self._journal.trace_headers and origin.trace_parent is not None:
            # An OMS that does not pass trace context on: the report continues the create's trace.
            self._journal.trace_headers = [("traceparent", origin.trace_parent.encode())]
        if log.isEnabledFor(logging.DEBUG):
            log.debug("order event %s", event.event_type.value, extra={
                "execution_id": event.execution_id, "ticket_id": event.ticket_id, "event_id": event.event_id,
                "external_order_id": event.external_order_id, "correlation_id": cause.correlation_id,
            })
        history = StoredHistory(self.state, execution.execution_id)
        self.state.settle(self._publish(apply_order_event(execution, event, history), cause, history))

    # -- outputs of an outcome ---------------------------------------------------------

    def _publish(self, outcome: Outcome, cause: Cause, history: StoredHistory) -> Execution:
        """Remember what the outcome adds to the history; store its log entry and publish its state
        change; instructions for what it released or asked to cancel; then the release marks of
        those tickets, each its own logged change. Returns the execution as it ends (stored)."""
        history.remember(outcome.remembered)
        execution = outcome.execution
        entry = outcome.entry
        if entry is None:
            return execution
        self.state.entries.put(entry_key(execution.execution_id, entry.seq), entry)
        self.state.heads.put(execution.execution_id, execution)
        self._outputs.state_change(translate.state_change_record(
            change_id=f"{execution.execution_id}/{entry.seq}", sequence=entry.seq, occurred_at=cause.at,
            correlation_id=cause.correlation_id, cause_kind=cause.kind, cause_id=cause.id, outcome=outcome,
        ))
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
            execution = self._publish(mark_released(execution, ticket.ticket_id, cause.at), cause, history)
        if outcome.state_after in _ENDED_FREEING_VERSION and outcome.state_before not in _ENDED_FREEING_VERSION \
                and not execution.policy.dry_run:
            proposal = execution.definition.proposal
            self._release_version(proposal.proposal_id, proposal.version_no, execution.execution_id, cause,
                                  outcome.state_after.value)
        return execution

    def _release_version(self, proposal_id: str, version_no: int, execution_id: str, cause: Cause,
                         ended_state: str) -> None:
        self._outputs.admission_request(translate.release_request_record(
            proposal_id=proposal_id, version_no=version_no, execution_id=execution_id, cause_id=cause.id,
            correlation_id=cause.correlation_id, issued_at=cause.at, ended_state=ended_state))

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
            "execution": None if execution is None else translate.snapshot_record(execution, content="SUMMARY"),
        })


def _key_conflict(execution_id: str) -> tuple[str, str]:
    return ("Idempotency key reused with a different request",
            f"the key already created execution {execution_id} from a different request body")
