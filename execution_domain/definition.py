"""What an execution is, fixed at creation: the proposal it executes, the policy, the tickets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from execution_domain.canonical import format_timestamp, parse_timestamp
from execution_domain.policy import ExecutionPolicy
from execution_domain.proposal import ProposalArtifact
from execution_domain.release import TicketGraph
from execution_domain.request import RequestOrigin
from execution_domain.tickets import Ticket, ticket_from_primitive

__all__ = ["ExecutionDefinition", "ProposalRef"]


@dataclass(frozen=True, slots=True)
class ProposalRef:
    proposal_id: str
    version_no: int
    proposal_version_hash: str
    portfolio_id: str
    base_currency: str

    @classmethod
    def of(cls, artifact: ProposalArtifact) -> ProposalRef:
        return cls(
            proposal_id=artifact.proposal_id,
            version_no=artifact.version_no,
            proposal_version_hash=artifact.proposal_version_hash,
            portfolio_id=artifact.portfolio_id,
            base_currency=artifact.base_currency,
        )

    def to_primitive(self) -> dict[str, Any]:
        return {
            "proposal_id": self.proposal_id,
            "version_no": self.version_no,
            "proposal_version_hash": self.proposal_version_hash,
            "portfolio_id": self.portfolio_id,
            "base_currency": self.base_currency,
        }

    @classmethod
    def from_primitive(cls, data: Mapping[str, Any]) -> ProposalRef:
        return cls(
            proposal_id=data["proposal_id"],
            version_no=data["version_no"],
            proposal_version_hash=data["proposal_version_hash"],
            portfolio_id=data["portfolio_id"],
            base_currency=data["base_currency"],
        )


@dataclass(frozen=True, slots=True)
class ExecutionDefinition:
    execution_id: str
    proposal: ProposalRef
    policy: ExecutionPolicy
    tickets: tuple[Ticket, ...]  # RFC 6.1 order, which respects dependencies
    origin: RequestOrigin
    request_hash: str  # lineage: canonical hash of the create request
    created_at: datetime
    attempt: int = 1  # which execution of this proposal version (1 = the first); part of the ticket ids
    # Derived once; not part of equality or the primitive form.
    graph: TicketGraph = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "graph", TicketGraph.of(self.tickets))

    @property
    def tickets_by_id(self) -> Mapping[str, Ticket]:
        return self.graph.by_id

    @property
    def dependants(self) -> Mapping[str, tuple[str, ...]]:
        return self.graph.dependants

    def to_primitive(self) -> dict[str, Any]:
        return {
            "execution_id": self.execution_id,
            "proposal": self.proposal.to_primitive(),
            "policy": self.policy.to_primitive(),
            "tickets": [ticket.to_primitive() for ticket in self.tickets],
            "origin": self.origin.to_primitive(),
            "request_hash": self.request_hash,
            "created_at": format_timestamp(self.created_at),
            "attempt": self.attempt,
        }

    @classmethod
    def from_primitive(cls, data: Mapping[str, Any]) -> ExecutionDefinition:
        return cls(
            execution_id=data["execution_id"],
            proposal=ProposalRef.from_primitive(data["proposal"]),
            policy=ExecutionPolicy.from_primitive(data["policy"]),
            tickets=tuple(ticket_from_primitive(item) for item in data["tickets"]),
            origin=RequestOrigin.from_primitive(data["origin"]),
            request_hash=data["request_hash"],
            created_at=parse_timestamp(data["created_at"]),
            attempt=data.get("attempt", 1),  # stores from before re-executions had attempt numbers
        )
