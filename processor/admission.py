"""The proposals subtopology (key proposal_id): approved proposal versions and admission.

It keeps every approved proposal version (immutable: a second record for a stored version
with another hash is refused to the dead-letter topic) and decides whether a new execution
of a version may start: the version must be known (stored, or carried inline and valid),
EXECUTION_READY, and, unless the request is a dry run, not held by another live execution.
A version is held from its admission until its execution ends REJECTED or CANCELLED.

Waiting for the proposal's partition. The task reads approved-proposals and admission-requests
independently, in arrival order. A request for a version it does not know, arriving while it has
not read its approved-proposals partition to the end (a backlog after an outage or a restart),
may be for a version published just before the create. So instead of answering NOT_FOUND at
once, the request waits in the store (`w/`) until the version arrives or the partition is read
to the end it had when the request arrived (its high watermark, asked of the broker: after every
record written before, committed or not yet), and is decided then. That is the question Kafka
Streams answers with stream time and `max.task.idle.ms`; here the end offset gives it exactly.
A partition that cannot be read to that end within WAIT_AT_MOST_S (an upstream transaction left
open keeps what follows it unreadable) does not hold a create longer. A request for a version
others already wait for waits behind them, so a version goes to the first asker. The waiting
requests are state like any other (changelogged, restored, their start time with them), and
deciding them is a punctuation: work a task does without an input record
(`processor.runtime.task.Punctuation`). One that cannot be decided (a bug, or its decision
refused by the broker) is answered INVALID_ARTIFACT with the reason, never left unanswered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from confluent_kafka import Message

from execution_domain import ArtifactInvalid, ProposalArtifact
from kafka_client.records import decode_value
from processor.metrics import ProcessorMetrics
from processor.outputs import Codecs, Outputs
from processor.runtime.kv import KeyValueStore
from processor.runtime.task import Handler, Punctuation, TaskContext
from processor.runtime.transaction import DeliveryCallback, KafkaTransaction
from processor.state_codecs import (
    ArtifactCodec,
    Reservation,
    ReservationCodec,
    WaitingAdmission,
    WaitingAdmissionsCodec,
)
from wire import records as translate
from wire.topics import TopicNames

log = logging.getLogger(__name__)

WAIT_AT_MOST_S = 30.0  # longest an admission waits for its proposal's partition to be read
_WAITING_KEY = "all"  # the task's waiting admissions, oldest first, under one key
_WAITING_AT_MOST = 500  # more waiting at once: answered NOT_FOUND at once (the key's value stays < 1 MB)

class ImmutableVersionViolation(ValueError):
    """A proposal version arrived again with different content."""


def _version_key(proposal_id: str, version_no: int) -> str:
    return f"{proposal_id}/{version_no}"


def _decision(request: dict[str, Any], outcome: str, *, artifact: ProposalArtifact | None = None,
              reason: str | None = None, existing: str | None = None, attempt: int = 1) -> dict[str, Any]:
    """The AdmissionDecision record answering `request`."""
    return {
        "request_id": request["request_id"], "execution_id": request["execution_id"],
        "proposal_id": request["proposal_id"], "version_no": request["version_no"],
        "correlation_id": request["correlation_id"], "decided_at": request["issued_at"],
        "outcome": outcome,
        "artifact": None if artifact is None else translate.artifact_to_record(artifact),
        "existing_execution_id": existing, "reason": reason, "attempt": attempt,
    }


def _waited_enough(waiting: WaitingAdmission, read: int | None, now: float) -> bool:
    """Read to the end the partition had when the request arrived, or waited WAIT_AT_MOST_S."""
    return (read is not None and read >= waiting.until) or now - waiting.since >= WAIT_AT_MOST_S


class ProposalsProcessor:
    """The handlers of one proposals task and the stores they use."""

    def __init__(self, context: TaskContext, topics: TopicNames, codecs: Codecs, *, max_tickets: int = 1_000,
                 metrics: ProcessorMetrics | None = None) -> None:
        self._topics = topics
        self._max_tickets = max_tickets
        self._outputs = Outputs(topics, context.journal, codecs)
        self._approved_proposal = codecs["approved-proposals"]
        self._admission_request = codecs["admission-requests"]
        # p/<proposal_id>/<version_no>: the stored version; r/...: who holds it. A version is read
        # when it is published again and at its executions' admissions, a few times in its life, and
        # a decoded artifact takes about eight times its encoded size: it is decoded from RocksDB
        # at each read (about 40 µs for 1 KB, against a create's milliseconds) and never cached (a
        # cache of even 1/32 of the budget held every version seen for minutes: a large part of the
        # soak's growth: docs/benchmarks.md).
        self.proposals: KeyValueStore[ProposalArtifact] = KeyValueStore(
            "proposals", b"p/", ArtifactCodec(), context.store, context.journal, max_cached_bytes=0)
        self.reservations: KeyValueStore[Reservation] = KeyValueStore(
            "reservations", b"r/", ReservationCodec(), context.store, context.journal,
            max_cached_bytes=context.cache_bytes // 32)
        self.waiting: KeyValueStore[tuple[WaitingAdmission, ...]] = KeyValueStore(
            "waiting-admissions", b"w/", WaitingAdmissionsCodec(), context.store, context.journal,
            max_cached_bytes=1024 * 1024)
        self._journal = context.journal
        self._inputs = context.inputs
        self._partition = context.task_id.partition
        self._arrived: set[tuple[str, int]] = set()  # versions stored while requests wait for them
        self._waits = (metrics or ProcessorMetrics()).admission_waits

    @property
    def stores(self) -> tuple[KeyValueStore[Any], ...]:
        return (self.proposals, self.reservations, self.waiting)

    def prepare_commit(self, txn: KafkaTransaction, refused: Callable[[bytes], DeliveryCallback]) -> None:
        """Nothing is produced per transaction."""

    def handlers(self) -> dict[str, Handler]:
        return {
            self._topics.approved_proposals: self.on_approved_proposal,
            self._topics.admission_requests: self.on_admission_request,
        }

    # -- approved proposals from upstream ------------------------------------------------

    def on_approved_proposal(self, message: Message) -> None:
        artifact = translate.artifact_from_record(decode_value(self._approved_proposal, message))
        self._store_artifact(artifact)
        if self.waiting.get(_WAITING_KEY):  # decided by the next punctuation, with the request's trace
            self._arrived.add((artifact.proposal_id, artifact.version_no))

    def _store_artifact(self, artifact: ProposalArtifact) -> None:
        key = _version_key(artifact.proposal_id, artifact.version_no)
        stored = self.proposals.get(key)
        if stored is not None:
            stored_hash = stored.proposal_version_hash
            if stored_hash != artifact.proposal_version_hash:
                raise ImmutableVersionViolation(
                    f"proposal {artifact.proposal_id} version {artifact.version_no} is stored with hash "
                    f"{stored_hash}; versions are immutable, refusing {artifact.proposal_version_hash}"
                )
            return  # the same version again (an upstream retry): nothing to do
        self.proposals.put(key, artifact)

    # -- admission requests from the executions subtopology --------------------------------

    def on_admission_request(self, message: Message) -> None:
        request = decode_value(self._admission_request, message)
        if request["kind"] == "RELEASE":
            self._release(request)
            return
        if request["artifact"] is None and self._waiting_for(request["proposal_id"], request["version_no"]):
            if self._wait(request, behind_others=True):  # the version goes to the first asker
                return
        decision = self._admit(request)
        if decision["outcome"] == "PROPOSAL_NOT_FOUND" and self._wait(request):
            return
        self._outputs.admission_decision(decision)

    # -- admissions waiting for the proposal's partition -------------------------------------

    def _waiting_for(self, proposal_id: str, version_no: int) -> bool:
        return any((w.request["proposal_id"], w.request["version_no"]) == (proposal_id, version_no)
                   for w in self.waiting.get(_WAITING_KEY) or ())

    def _wait(self, request: dict[str, Any], *, behind_others: bool = False) -> bool:
        """Keep a request for an unknown version waiting if approved-proposals may still hold it
        unread (see the module's docstring), or behind others waiting for its version; False: it
        is decided now."""
        topic = self._topics.approved_proposals
        end = self._inputs.end_offset(topic, self._partition)
        read = self._inputs.read_to(topic, self._partition)
        if not behind_others and (end is None or end == 0 or (read is not None and read >= end)):
            return False  # cannot be known, or read to the end (or nothing to read): the answer stands
        waiting = self.waiting.get(_WAITING_KEY) or ()
        if len(waiting) >= _WAITING_AT_MOST:
            return False
        self.waiting.put(_WAITING_KEY, (*waiting, WaitingAdmission(
            request, tuple(self._journal.trace_headers), end or 0, time.time())))
        self._waits.labels("WAITING").inc()
        log.info("admission waits for approved-proposals to be read", extra={
            "proposal_id": request["proposal_id"], "version_no": request["version_no"],
            "execution_id": request["execution_id"], "partition": self._partition, "read_to": read, "until": end,
            "behind_others": behind_others,
        })
        return True

    def punctuations(self) -> list[Punctuation]:
        """The waiting admissions now due: their version arrived, the partition was read to their
        end offset, or they waited WAIT_AT_MOST_S; for each version, in arrival order up to the
        first one not due."""
        waiting = self.waiting.get(_WAITING_KEY)
        if not waiting:
            return []
        arrived, self._arrived = self._arrived, set()
        read = self._inputs.read_to(self._topics.approved_proposals, self._partition)
        now = time.time()
        due: list[Punctuation] = []
        blocked: set[tuple[str, int]] = set()
        for w in waiting:
            version = (w.request["proposal_id"], w.request["version_no"])
            if version in blocked:
                continue
            if version in arrived or _waited_enough(w, read, now):
                due.append(Punctuation(f"admission {w.request_id}", list(w.trace_headers),
                                       partial(self._decide_waiting, w.request_id),
                                       partial(self._give_up_waiting, w.request_id)))
            else:
                blocked.add(version)
        return due

    def _decide_waiting(self, request_id: str) -> None:
        waiting = next((w for w in self.waiting.get(_WAITING_KEY) or () if w.request_id == request_id), None)
        if waiting is None:
            return
        decision = self._admit(dict(waiting.request))  # NOT_FOUND has no effects: nothing to undo below
        if decision["outcome"] == "PROPOSAL_NOT_FOUND" and not _waited_enough(
                waiting, self._inputs.read_to(self._topics.approved_proposals, self._partition), time.time()):
            return  # the version's arrival was undone (its transaction aborted): it goes on waiting, in place
        self._stop_waiting(request_id)
        self._outputs.admission_decision(decision)
        self._waits.labels(decision["outcome"]).inc()

    def _give_up_waiting(self, request_id: str, why: str) -> None:
        """The request cannot be decided (Task.punctuate: a bug, or its decision refused): answer it
        so the create is not left pending, with a small decision that names why."""
        waiting = self._stop_waiting(request_id)
        if waiting is None:
            return
        request = waiting.request
        self._outputs.admission_decision(_decision(
            dict(request), "INVALID_ARTIFACT",
            reason=f"proposal {request['proposal_id']} version {request['version_no']} could not be admitted: {why}"))
        self._waits.labels("INVALID_ARTIFACT").inc()

    def _stop_waiting(self, request_id: str) -> WaitingAdmission | None:
        waiting = self.waiting.get(_WAITING_KEY) or ()
        found = next((w for w in waiting if w.request_id == request_id), None)
        remaining = tuple(w for w in waiting if w.request_id != request_id)
        if remaining:
            self.waiting.put(_WAITING_KEY, remaining)
        elif waiting:
            self.waiting.delete(_WAITING_KEY)
        return found

    def _admit(self, request: dict[str, Any]) -> dict[str, Any]:
        proposal_id, version_no = request["proposal_id"], request["version_no"]
        decision = partial(_decision, request)

        stored = self.proposals.get(_version_key(proposal_id, version_no))
        artifact = stored
        if request["artifact"] is not None:
            try:
                inline = translate.artifact_from_record(request["artifact"])
            except ArtifactInvalid as invalid:
                return decision("INVALID_ARTIFACT", reason=f"inline artifact is invalid: {invalid}")
            if (inline.proposal_id, inline.version_no) != (proposal_id, version_no):
                return decision("INVALID_ARTIFACT", reason=(
                    f"inline artifact is {inline.proposal_id} v{inline.version_no}, "
                    f"the request names {proposal_id} v{version_no}"))
            if stored is not None and stored.proposal_version_hash != inline.proposal_version_hash:
                return decision("INVALID_ARTIFACT", reason=(
                    f"inline artifact hash {inline.proposal_version_hash} differs from the stored version "
                    f"{stored.proposal_version_hash}; versions are immutable"))
            # Never stored as the version: an inline artifact lives with its execution only, so the
            # version its owner publishes upstream always wins (test_inline_artifact_never_becomes_the_stored_version).
            artifact = inline
        if artifact is None:
            return decision("PROPOSAL_NOT_FOUND", reason=f"proposal {proposal_id} version {version_no} is not known")
        intents = len(artifact.trades_and_funding.intents)
        if intents > self._max_tickets:  # a limit at the edge: every record it would cause stays bounded
            return decision("INVALID_ARTIFACT", reason=(
                f"proposal {proposal_id} version {version_no} has {intents:,} intents; an execution has at most "
                f"{self._max_tickets:,} tickets (PROCESSOR_MAX_TICKETS)"))
        if not artifact.is_execution_ready:
            gate = artifact.gate_decision
            reasons = "; ".join(f"{r.code}: {r.message}" for r in gate.reasons) or "no reasons given"
            return decision("NOT_EXECUTABLE", reason=f"gate decision is {gate.decision.value} ({reasons})")
        key = _version_key(proposal_id, version_no)
        reservation = self.reservations.get(key)
        attempts = 0 if reservation is None else reservation.attempts  # executions of the version admitted so far
        if reservation is not None and reservation.live and reservation.execution_id == request["execution_id"]:
            return decision("ADMITTED", artifact=artifact, attempt=attempts)  # its own admission again
        if request["reserve_version"]:
            holder = self._live_holder(proposal_id, version_no)
            if holder is not None:
                return decision("VERSION_IN_USE", existing=holder, reason=(
                    f"proposal {proposal_id} version {version_no} is being executed by {holder}"))
            self.reservations.put(key, Reservation(request["execution_id"], live=True, attempts=attempts + 1))
        # A dry run previews the ticket ids the next execution will get, and counts as none.
        return decision("ADMITTED", artifact=artifact, attempt=attempts + 1)

    def _live_holder(self, proposal_id: str, version_no: int) -> str | None:
        reservation = self.reservations.get(_version_key(proposal_id, version_no))
        return reservation.execution_id if reservation is not None and reservation.live else None

    def _release(self, request: dict[str, Any]) -> None:
        proposal_id, version_no = request["proposal_id"], request["version_no"]
        if self._live_holder(proposal_id, version_no) != request["execution_id"]:
            return  # not (or no longer) the holder: nothing to release
        held = self.reservations.get(_version_key(proposal_id, version_no))
        self.reservations.put(_version_key(proposal_id, version_no), Reservation(
            request["execution_id"], live=False, ended_state=request["ended_state"],
            attempts=1 if held is None else held.attempts))
        log.info("released proposal version", extra={
            "proposal_id": proposal_id, "version_no": version_no, "execution_id": request["execution_id"],
        })
