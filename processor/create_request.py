"""A create command's request, as the executions subtopology keeps it while admission runs.

The processor recomputes the canonical request hash from the command's content (the
gateway's copy is informative only), so idempotency does not depend on every gateway
version hashing alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from execution_domain import Actor, ExecutionPolicy, RequestOrigin, request_hash
from wire import records as translate


@dataclass(frozen=True, slots=True)
class CreateRequest:
    proposal_id: str
    version_no: int
    policy: ExecutionPolicy
    actor: Actor
    idempotency_key: str
    request_hash: str
    artifact_inline: bool  # the request carried the artifact itself (RFC 3)
    inline_artifact: dict[str, Any] | None  # that ApprovedProposal record (not kept while pending)

    @classmethod
    def from_command(cls, record: dict[str, Any]) -> CreateRequest:
        """From an ExecutionCommand record carrying CreateExecution; ValueError if it is invalid."""
        command = translate.create_command_from_record(record)
        inline = command.artifact_record
        actor = command.origin.actor
        return cls(
            proposal_id=command.proposal_id,
            version_no=command.version_no,
            policy=command.policy,
            actor=actor,
            idempotency_key=command.origin.idempotency_key or "",
            request_hash=request_hash(
                command.proposal_id, command.version_no, command.policy, actor,
                inline_artifact_hash=None if inline is None else inline["proposal_version_hash"],
            ),
            artifact_inline=inline is not None,
            inline_artifact=inline,
        )

    def origin(self, correlation_id: str | None, trace_parent: str | None = None) -> RequestOrigin:
        return RequestOrigin(self.actor, idempotency_key=self.idempotency_key, correlation_id=correlation_id,
                             trace_parent=trace_parent)

    def to_primitive(self) -> dict[str, Any]:
        """JSON-able form for the pending-admission state (the inline artifact is not kept:
        the admission decision carries the artifact to execute)."""
        return {
            "proposal_id": self.proposal_id,
            "version_no": self.version_no,
            "policy": self.policy.to_primitive(),
            "actor": self.actor.to_primitive(),
            "idempotency_key": self.idempotency_key,
            "request_hash": self.request_hash,
            "artifact_inline": self.artifact_inline,
        }

    @classmethod
    def from_primitive(cls, data: dict[str, Any]) -> CreateRequest:
        return cls(
            proposal_id=data["proposal_id"],
            version_no=data["version_no"],
            policy=ExecutionPolicy.from_primitive(data["policy"]),
            actor=Actor.from_primitive(data["actor"]),
            idempotency_key=data["idempotency_key"],
            request_hash=data["request_hash"],
            artifact_inline=data["artifact_inline"],
            inline_artifact=None,
        )
