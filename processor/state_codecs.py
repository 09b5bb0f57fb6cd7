"""How the processor's stores encode their values (JSON; internal state, not a wire contract).

Every codec is an object owned by one task (`processor.topology`): any cache it keeps dies with
the task when its partition is revoked. Decoding an older layout must keep working across an
upgrade, since a store and its changelog outlive a release.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from execution_domain import Execution, ProposalArtifact, parse_artifact
from processor.create_request import CreateRequest


class ExecutionCodec:
    """An execution as ``orjson.dumps(execution.to_primitive())``, built from cached JSON of its
    immutable parts.

    A log entry never changes once appended, nor does an execution's definition, and a ticket
    record is replaced (not changed) when its ticket moves: re-encoding all of them for every
    changed execution at every commit was the top of the profile after the state-change encoding
    (docs/benchmarks.md). The caches are keyed by identity and hold the value itself, so an id
    cannot be reused while cached; bounded, cleared when full (a miss costs one plain encoding).
    """

    def __init__(self, *, definitions: int = 50_000, tickets: int = 50_000, entries: int = 200_000) -> None:
        self._definitions = _IdentityJson(definitions)
        self._tickets = _IdentityJson(tickets)
        self._entries = _IdentityJson(entries)

    def encode(self, execution: Execution) -> bytes:
        definition = self._definitions(execution.definition)
        tickets = b",".join([self._tickets(record) for record in execution.records.values()])
        entries = b",".join([self._entries(entry) for entry in execution.log])
        rest = orjson.dumps(_bookkeeping(execution))  # '{"state":...}', never empty
        return b"".join((b'{"definition":', definition, b',"tickets":[', tickets, b'],"log":[', entries, b"],", rest[1:]))

    def decode(self, data: bytes) -> Execution:
        return Execution.from_primitive(orjson.loads(data))

    @property
    def cached(self) -> int:
        return len(self._definitions) + len(self._tickets) + len(self._entries)


def _bookkeeping(execution: Execution) -> dict[str, Any]:
    """The keys of `Execution.to_primitive()` after definition, tickets and log, in its order."""
    primitive: dict[str, Any] = {
        "state": execution.state.value,
        "cancel_request": None if execution.cancel_request is None else execution.cancel_request.to_primitive(),
        "handled_commands": sorted(execution.handled_commands),
        "unrouted_events": [
            {
                "execution_id": key[0],
                "ticket_id": key[1],
                "event_id": key[2],
                "reports": [report.to_primitive() for report in reports],
            }
            for key, reports in execution.unrouted_events.items()
        ],
    }
    return primitive


class _IdentityJson:
    """JSON of immutable values (`to_primitive()`), encoded once per value object."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._json: dict[int, tuple[Any, bytes]] = {}

    def __len__(self) -> int:
        return len(self._json)

    def __call__(self, value: Any) -> bytes:
        hit = self._json.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1]
        data = orjson.dumps(value.to_primitive())
        if len(self._json) >= self._limit:
            self._json.clear()
        self._json[id(value)] = (value, data)
        return data


@dataclass(frozen=True, slots=True)
class Waiter:
    """A create command waiting for its execution's admission, answered when it is decided."""

    command_id: str
    correlation_id: str | None


@dataclass(frozen=True, slots=True)
class PendingAdmission:
    """An execution whose create is being admitted by its proposal's partition."""

    command_id: str  # the first create's: the admission request's id
    correlation_id: str | None
    issued_at: str  # ISO 8601, the first create's issued_at
    request: CreateRequest
    waiters: tuple[Waiter, ...]

    @property
    def request_hash(self) -> str:
        return self.request.request_hash

    def with_waiter(self, waiter: Waiter) -> PendingAdmission:
        return PendingAdmission(self.command_id, self.correlation_id, self.issued_at, self.request,
                                (*self.waiters, waiter))


class PendingAdmissionCodec:
    def encode(self, value: PendingAdmission) -> bytes:
        return orjson.dumps({
            "command_id": value.command_id,
            "correlation_id": value.correlation_id,
            "issued_at": value.issued_at,
            "request": value.request.to_primitive(),
            "request_hash": value.request.request_hash,
            "waiters": [[waiter.command_id, waiter.correlation_id] for waiter in value.waiters],
        })

    def decode(self, data: bytes) -> PendingAdmission:
        raw = orjson.loads(data)
        return PendingAdmission(
            command_id=raw["command_id"],
            correlation_id=raw["correlation_id"],
            issued_at=raw["issued_at"],
            request=CreateRequest.from_primitive(raw["request"]),
            waiters=tuple(Waiter(command_id, correlation_id) for command_id, correlation_id in raw["waiters"]),
        )


@dataclass(frozen=True, slots=True)
class Reservation:
    """Who holds (or last held) a proposal version."""

    execution_id: str
    live: bool
    ended_state: str | None = None  # the state it ended in once no longer live


class ReservationCodec:
    def encode(self, value: Reservation) -> bytes:
        if value.live:
            return orjson.dumps({"execution_id": value.execution_id, "live": True})
        return orjson.dumps({"execution_id": value.execution_id, "live": False, "ended_state": value.ended_state})

    def decode(self, data: bytes) -> Reservation:
        raw = orjson.loads(data)
        return Reservation(raw["execution_id"], raw["live"], raw.get("ended_state"))


class ArtifactCodec:
    """A stored proposal version: the JSON of its primitive form, validated (hash included) on read."""

    def encode(self, value: ProposalArtifact) -> bytes:
        return orjson.dumps(value.to_primitive())

    def decode(self, data: bytes) -> ProposalArtifact:
        return parse_artifact(orjson.loads(data))
