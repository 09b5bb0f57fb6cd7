"""RFC 9457 problem details: every error the gateway answers, each with a stable `type` URI.

`ProblemType` is the catalogue (docs/gateway.md lists it); `ApiProblem` is the exception a
handler raises, and `problem_response` turns it into an `application/problem+json` answer.
Clients branch on `type`, never on `title` or `detail`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

PROBLEM_BASE = "https://execution-integration/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"


@dataclass(frozen=True, slots=True)
class ProblemType:
    slug: str
    status: int
    title: str

    @property
    def uri(self) -> str:
        return PROBLEM_BASE + self.slug


class Problems:
    """The catalogue. Adding a type is fine; changing a slug breaks clients."""

    MALFORMED_REQUEST = ProblemType("malformed-request", 400, "Malformed request")
    IDEMPOTENCY_KEY_MISSING = ProblemType("idempotency-key-missing", 400, "Idempotency-Key header required")
    IDEMPOTENCY_KEY_INVALID = ProblemType("idempotency-key-invalid", 400, "Idempotency-Key header invalid")
    INVALID_CURSOR = ProblemType("invalid-cursor", 400, "Invalid cursor")
    DUPLICATE_HEADER = ProblemType("duplicate-header", 400, "A header that must appear once appears more than once")
    UNAUTHORIZED = ProblemType("unauthorized", 401, "Authentication required")
    INVALID_SIGNATURE = ProblemType("invalid-signature", 401, "Invalid webhook signature")
    STALE_SIGNATURE = ProblemType("stale-signature", 401, "Webhook signature timestamp outside the accepted window")
    INSUFFICIENT_SCOPE = ProblemType("insufficient-scope", 403, "The token's scopes do not allow this")
    INLINE_ARTIFACTS_DISABLED = ProblemType(
        "inline-artifacts-disabled", 403, "This gateway does not accept inline proposal artifacts")
    NOT_FOUND = ProblemType("not-found", 404, "Not found")
    EXECUTION_NOT_FOUND = ProblemType("execution-not-found", 404, "Execution not found")
    PROPOSAL_NOT_FOUND = ProblemType("proposal-not-found", 404, "Proposal version not found")
    METHOD_NOT_ALLOWED = ProblemType("method-not-allowed", 405, "Method not allowed")
    REQUEST_TIMEOUT = ProblemType("request-timeout", 408, "The request was not received in time")
    IDEMPOTENCY_KEY_CONFLICT = ProblemType(
        "idempotency-key-conflict", 409, "Idempotency key reused with a different request")
    PROPOSAL_VERSION_IN_USE = ProblemType(
        "proposal-version-in-use", 409, "Proposal version already being executed")
    CANCEL_REJECTED = ProblemType("cancel-rejected", 409, "Cancellation rejected")
    PAYLOAD_TOO_LARGE = ProblemType("payload-too-large", 413, "Request body too large")
    UNSUPPORTED_MEDIA_TYPE = ProblemType("unsupported-media-type", 415, "Content-Type must be application/json")
    VALIDATION_FAILED = ProblemType("validation-failed", 422, "Request body failed validation")
    INVALID_ARTIFACT = ProblemType("invalid-artifact", 422, "Invalid proposal artifact")
    PROPOSAL_NOT_EXECUTABLE = ProblemType("proposal-not-executable", 422, "Proposal version is not executable")
    INVALID_REQUEST = ProblemType("invalid-request", 422, "Execution request rejected")
    UNKNOWN_TICKET = ProblemType("unknown-ticket", 422, "Ticket does not belong to the execution")
    COMMAND_FAILED = ProblemType("command-failed", 500, "The processor failed to apply the command")
    INTERNAL_ERROR = ProblemType("internal-error", 500, "Internal error")
    SERVICE_UNAVAILABLE = ProblemType("service-unavailable", 503, "Service unavailable")

    @classmethod
    def all(cls) -> list[ProblemType]:
        return [value for value in vars(cls).values() if isinstance(value, ProblemType)]


class ApiProblem(Exception):
    """Raised by handlers; answered as problem details by the edge middleware."""

    def __init__(
        self,
        kind: ProblemType,
        detail: str | None = None,
        *,
        title: str | None = None,
        errors: Sequence[Mapping[str, str]] | None = None,
        execution_id: str | None = None,
        existing_execution_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail or kind.title)
        self.kind = kind
        self.detail = detail
        self.title = title or kind.title
        self.errors = list(errors) if errors is not None else None
        self.execution_id = execution_id
        self.existing_execution_id = existing_execution_id
        self.headers = dict(headers or {})

    def body(self, *, instance: str | None, correlation_id: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.kind.uri, "title": self.title, "status": self.kind.status}
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        if correlation_id:
            body["correlation_id"] = correlation_id
        if self.errors is not None:
            body["errors"] = self.errors
        if self.execution_id:
            body["execution_id"] = self.execution_id
        if self.existing_execution_id:
            body["existing_execution_id"] = self.existing_execution_id
        return body


def problem_response(problem: ApiProblem, *, instance: str | None, correlation_id: str | None) -> web.Response:
    return web.Response(
        status=problem.kind.status,
        body=orjson.dumps(problem.body(instance=instance, correlation_id=correlation_id)),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=problem.headers,
    )


def from_http_exception(error: web.HTTPException) -> ApiProblem:
    """aiohttp's own errors (no route, wrong method, body too large) as problems."""
    status = error.status
    if status == 404:
        return ApiProblem(Problems.NOT_FOUND, "no such resource")
    if status == 405:
        allowed = getattr(error, "allowed_methods", None) or ()
        headers = {"Allow": ", ".join(sorted(allowed))} if allowed else None
        return ApiProblem(Problems.METHOD_NOT_ALLOWED, "method not allowed on this resource", headers=headers)
    if status == 413:
        return ApiProblem(Problems.PAYLOAD_TOO_LARGE, "the request body exceeds the accepted size")
    if status == 415:
        return ApiProblem(Problems.UNSUPPORTED_MEDIA_TYPE, "send Content-Type: application/json")
    if 400 <= status < 500:
        return ApiProblem(Problems.MALFORMED_REQUEST, error.reason)
    if status == 503:
        return ApiProblem(Problems.SERVICE_UNAVAILABLE, error.reason)
    return ApiProblem(Problems.INTERNAL_ERROR, "unexpected error")
