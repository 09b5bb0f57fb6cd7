"""The proposals subtopology (key proposal_id): approved proposal versions and admission.

It keeps every approved proposal version (immutable: a second record for a stored version
with another hash is refused to the dead-letter topic) and decides whether a new execution
of a version may start: the version must be known (stored, or carried inline and valid),
EXECUTION_READY, and, unless the request is a dry run, not held by another live execution.
A version is held from its admission until its execution ends REJECTED or CANCELLED.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from confluent_kafka import Message

from execution_domain import ArtifactInvalid, ProposalArtifact, parse_artifact
from processor.outputs import Outputs
from processor.state_store import PartitionStore
from processor.transaction import ProcessingTransaction
from wire import records as translate
from wire import serde

log = logging.getLogger(__name__)

_APPROVED_PROPOSAL = serde.codec("ApprovedProposal")
_ADMISSION_REQUEST = serde.codec("AdmissionRequest")


class ImmutableVersionViolation(ValueError):
    """A proposal version arrived again with different content."""


def _version_key(prefix: str, proposal_id: str, version_no: int) -> bytes:
    return f"{prefix}/{proposal_id}/{version_no}".encode()


def _decode(codec: serde.Codec, message: Message) -> dict[str, Any]:
    return codec.decode(message.value(), topic=message.topic(), partition=message.partition(), offset=message.offset())


class ProposalAdmission:
    def __init__(self, outputs: Outputs) -> None:
        self._outputs = outputs

    # -- approved proposals from upstream ------------------------------------------------

    def on_approved_proposal(self, message: Message, store: PartitionStore, txn: ProcessingTransaction) -> None:
        artifact = translate.artifact_from_record(_decode(_APPROVED_PROPOSAL, message))
        self._store_artifact(artifact, store, txn)

    def _store_artifact(self, artifact: ProposalArtifact, store: PartitionStore, txn: ProcessingTransaction) -> None:
        key = _version_key("p", artifact.proposal_id, artifact.version_no)
        stored = txn.get(store, key)
        if stored is not None:
            stored_hash = orjson.loads(stored)["proposal_version_hash"]
            if stored_hash != artifact.proposal_version_hash:
                raise ImmutableVersionViolation(
                    f"proposal {artifact.proposal_id} version {artifact.version_no} is stored with hash "
                    f"{stored_hash}; versions are immutable, refusing {artifact.proposal_version_hash}"
                )
            return  # the same version again (an upstream retry): nothing to do
        txn.put(store, key, orjson.dumps(artifact.to_primitive()))

    def _stored_artifact(self, proposal_id: str, version_no: int, store: PartitionStore,
                         txn: ProcessingTransaction) -> ProposalArtifact | None:
        stored = txn.get(store, _version_key("p", proposal_id, version_no))
        return None if stored is None else parse_artifact(orjson.loads(stored))

    # -- admission requests from the executions subtopology --------------------------------

    def on_admission_request(self, message: Message, store: PartitionStore, txn: ProcessingTransaction) -> None:
        request = _decode(_ADMISSION_REQUEST, message)
        if request["kind"] == "RELEASE":
            self._release(request, store, txn)
        else:
            self._outputs.admission_decision(txn, self._admit(request, store, txn))

    def _admit(self, request: dict[str, Any], store: PartitionStore, txn: ProcessingTransaction) -> dict[str, Any]:
        proposal_id, version_no = request["proposal_id"], request["version_no"]

        def decision(outcome: str, *, artifact: ProposalArtifact | None = None, reason: str | None = None,
                     existing: str | None = None) -> dict[str, Any]:
            return {
                "request_id": request["request_id"], "execution_id": request["execution_id"],
                "proposal_id": proposal_id, "version_no": version_no,
                "correlation_id": request["correlation_id"], "decided_at": request["issued_at"],
                "outcome": outcome,
                "artifact": None if artifact is None else translate.artifact_to_record(artifact),
                "existing_execution_id": existing, "reason": reason,
            }

        stored = self._stored_artifact(proposal_id, version_no, store, txn)
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
            if stored is None:
                self._store_artifact(inline, store, txn)  # now known: later requests may omit it
            artifact = inline
        if artifact is None:
            return decision("PROPOSAL_NOT_FOUND", reason=f"proposal {proposal_id} version {version_no} is not known")
        if not artifact.is_execution_ready:
            gate = artifact.gate_decision
            reasons = "; ".join(f"{r.code}: {r.message}" for r in gate.reasons) or "no reasons given"
            return decision("NOT_EXECUTABLE", reason=f"gate decision is {gate.decision.value} ({reasons})")
        if request["reserve_version"]:
            holder = self._live_holder(proposal_id, version_no, store, txn)
            if holder is not None and holder != request["execution_id"]:
                return decision("VERSION_IN_USE", existing=holder, reason=(
                    f"proposal {proposal_id} version {version_no} is being executed by {holder}"))
            txn.put(store, _version_key("r", proposal_id, version_no),
                    orjson.dumps({"execution_id": request["execution_id"], "live": True}))
        return decision("ADMITTED", artifact=artifact)

    def _live_holder(self, proposal_id: str, version_no: int, store: PartitionStore,
                     txn: ProcessingTransaction) -> str | None:
        raw = txn.get(store, _version_key("r", proposal_id, version_no))
        if raw is None:
            return None
        reservation = orjson.loads(raw)
        return reservation["execution_id"] if reservation["live"] else None

    def _release(self, request: dict[str, Any], store: PartitionStore, txn: ProcessingTransaction) -> None:
        proposal_id, version_no = request["proposal_id"], request["version_no"]
        if self._live_holder(proposal_id, version_no, store, txn) != request["execution_id"]:
            return  # not (or no longer) the holder: nothing to release
        txn.put(store, _version_key("r", proposal_id, version_no), orjson.dumps({
            "execution_id": request["execution_id"], "live": False, "ended_state": request["ended_state"],
        }))
        log.info("released proposal version", extra={
            "proposal_id": proposal_id, "version_no": version_no, "execution_id": request["execution_id"],
        })
