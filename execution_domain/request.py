"""Who asked for an execution, and the canonical request hash (RFC 5.1, 8.1) for idempotency and lineage."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from execution_domain.canonical import canonical_sha256
from execution_domain.policy import DEFAULT_ON_CRITICAL_REJECTION, ExecutionPolicy

__all__ = ["Actor", "RequestOrigin", "execution_id_for_key", "request_hash"]


@dataclass(frozen=True, slots=True)
class Actor:
    requested_by: str  # who asked: the authenticated principal where there is one
    channel: str
    claimed_requested_by: str | None = None  # what the client said, when it differs; recorded, never trusted

    def to_primitive(self) -> dict[str, Any]:
        primitive: dict[str, Any] = {"requested_by": self.requested_by, "channel": self.channel}
        if self.claimed_requested_by is not None:  # absent otherwise: request hashes from before it existed hold
            primitive["claimed_requested_by"] = self.claimed_requested_by
        return primitive

    @classmethod
    def from_primitive(cls, data: Any) -> Actor:
        return cls(requested_by=data["requested_by"], channel=data["channel"],
                   claimed_requested_by=data.get("claimed_requested_by"))


@dataclass(frozen=True, slots=True)
class RequestOrigin:
    """Audit facts about the create request; opaque to the domain, kept with the execution."""

    actor: Actor
    idempotency_key: str | None = None
    correlation_id: str | None = None
    trace_parent: str | None = None  # W3C traceparent of the create: reports that carry none continue it

    def to_primitive(self) -> dict[str, Any]:
        primitive: dict[str, Any] = {
            "actor": self.actor.to_primitive(),
            "idempotency_key": self.idempotency_key,
            "correlation_id": self.correlation_id,
        }
        if self.trace_parent is not None:
            primitive["trace_parent"] = self.trace_parent
        return primitive

    @classmethod
    def from_primitive(cls, data: Any) -> RequestOrigin:
        return cls(
            actor=Actor.from_primitive(data["actor"]),
            idempotency_key=data["idempotency_key"],
            correlation_id=data["correlation_id"],
            trace_parent=data.get("trace_parent"),
        )


# Policy fields added after the first release, with their defaults (see request_hash).
_LATER_POLICY_FIELDS = {"on_critical_rejection": DEFAULT_ON_CRITICAL_REJECTION.value}


def request_hash(
    proposal_id: str,
    version_no: int,
    policy: ExecutionPolicy,
    actor: Actor,
    inline_artifact_hash: str | None = None,
) -> str:
    """sha256 over the canonical JSON of the create-request body (RFC 5.1), policy defaults filled in.

    Two bodies that mean the same thing hash the same (key order, whitespace, "25" vs "25.0",
    an omitted default); the Idempotency-Key and correlation id are not part of the body. A
    request carrying the artifact inline (RFC 3) is identified by that artifact's
    proposal_version_hash, which covers its whole content.

    A policy field added after requests were first hashed counts only when it differs from its
    default, so a request hashes the same before and after the field existed (a retry across
    the upgrade is a replay, not a conflict).
    """
    policy_body = policy.to_primitive()
    for name, default in _LATER_POLICY_FIELDS.items():
        if policy_body.get(name) == default:
            del policy_body[name]
    body: dict[str, object] = {
        "proposal_id": proposal_id,
        "version_no": version_no,
        "execution_policy": policy_body,
        "actor": actor.to_primitive(),
    }
    if inline_artifact_hash is not None:
        body["inline_artifact_hash"] = inline_artifact_hash
    return canonical_sha256(body)


def execution_id_for_key(idempotency_key: str) -> str:
    """The execution a create request with this Idempotency-Key creates (or already created).

    Deterministic, so that every retry of a create, through any gateway instance, names the
    same execution and is routed (by execution_id) to the same partition, where the first
    one is remembered.
    """
    return "exec_" + hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:24]
