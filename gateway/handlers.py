"""The route handlers: HTTP in, Kafka commands/events out, answers from the processor's results
or the read model. Errors are raised as `ApiProblem`; the edge middleware renders them."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import orjson
from aiohttp import web
from opentelemetry.trace import Link, SpanKind, get_current_span
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError

from execution_domain import (
    Actor,
    ArtifactInvalid,
    ExecutionPolicy,
    ExecutionState,
    ProposalArtifact,
    execution_id_for_key,
    parse_artifact,
    request_hash,
)
from gateway import commands, models, webhook
from gateway.auth import BearerAuth, Principal, Scope, insufficient_scope_challenge
from gateway.commands import PublishError
from gateway.config import DEFAULT_EVENTS_LIMIT, DEFAULT_LIST_LIMIT, MAX_EVENTS_LIMIT, MAX_LIST_LIMIT, GatewayConfig
from gateway.cursor import InvalidCursor, decode_cursor, encode_cursor, filters_digest
from gateway.logging_context import correlation_id_var
from gateway.metrics import GatewayMetrics
from gateway.openapi import IDEMPOTENCY_KEY_PATTERN, openapi_document
from gateway.problems import ApiProblem, Problems
from gateway.read_store import ExecutionHead, micros
from gateway.views import RECENT_EVENTS, events_path, execution_body, execution_view
from gateway.webhook import SIGNATURE_HEADER, SignatureError, SignatureFailure, SignatureVerifier
from observability import tracing
from wire.topics import CORRELATION_ID_HEADER

log = logging.getLogger(__name__)
TRACER = tracing.get_tracer("gateway")

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
CORRELATION_ID = web.RequestKey("correlation_id", str)  # set by the edge middleware
CORRELATION_OFFERED = web.RequestKey("correlation_offered", bool)  # the client sent a usable X-Correlation-Id
TRACE_OFFERED = web.RequestKey("trace_offered", bool)  # the client sent a valid traceparent
PRINCIPAL = web.RequestKey("principal", Principal)  # who the bearer token speaks for (gateway.auth)
EXECUTION_ID = web.RequestKey("execution_id", str)  # the execution a create names, for the access log
CLOSE_CONNECTION = web.RequestKey("close_connection", bool)  # answer, then close (body not read to its end)
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
_LIMIT = re.compile(r"[0-9]{1,4}")  # ASCII digits only: str.isdigit() also accepts "²", which int() refuses
_SEQ = re.compile(r"[0-9]{1,12}")
_EXECUTION_STATES = frozenset(state.value for state in ExecutionState)
_JSON = "application/json"
_LIST_PARAMETERS = frozenset({"proposal_id", "status", "from", "to", "limit", "cursor"})
_EVENTS_PARAMETERS = frozenset({"after_seq", "limit"})

M = TypeVar("M", bound=BaseModel)


class Backend(Protocol):
    """What the handlers need from the Kafka side (`gateway.backend.KafkaBackend`; fakes in tests)."""

    publisher: Any
    results: Any
    read_model: Any

    def checks(self) -> tuple[bool, bool, dict[str, str]]: ...


def _require_json(request: web.Request) -> None:
    """415 unless the body is declared `application/json` (UTF-8, the only charset JSON has)."""
    declared = request.headers.get("Content-Type")
    charset = (request.charset or "utf-8").lower()
    if declared is None or request.content_type != _JSON or charset not in ("utf-8", "utf8"):
        raise ApiProblem(Problems.UNSUPPORTED_MEDIA_TYPE, "send the body as Content-Type: application/json")


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return web.Response(status=status, body=data, content_type=_JSON, headers=headers)


def parse_body(raw: bytes, model: type[M]) -> M:
    """The validated body: 400 if it is not JSON, 422 with every problem if it does not validate."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        details = error.errors(include_url=False, include_input=False)
        if any(detail["type"] == "json_invalid" for detail in details):
            raise ApiProblem(Problems.MALFORMED_REQUEST, "the body is not valid JSON") from None
        raise ApiProblem(Problems.VALIDATION_FAILED, f"{len(details)} problem(s) in the body", errors=[
            {"path": _path(detail["loc"]), "code": detail["type"], "message": detail["msg"]} for detail in details
        ]) from None


def _path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _location(execution_id: str) -> str:
    return f"/rebalance/executions/{execution_id}"


def _timestamp_param(query: Mapping[str, str], name: str) -> int | None:
    text = query.get(name)
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ApiProblem(Problems.MALFORMED_REQUEST, f"{name} must be an RFC 3339 timestamp") from None
    if value.tzinfo is None:
        raise ApiProblem(Problems.MALFORMED_REQUEST, f"{name} must carry a UTC offset, e.g. 2026-02-18T10:00:00Z")
    try:
        return micros(value.astimezone(UTC))
    except OverflowError:
        raise ApiProblem(Problems.MALFORMED_REQUEST, f"{name} is out of range") from None


def _refuse_unknown_parameters(query: Mapping[str, str], allowed: frozenset[str]) -> None:
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise ApiProblem(Problems.MALFORMED_REQUEST, f"unknown query parameter(s): {', '.join(map(repr, unknown))}; "
                                                     f"allowed: {', '.join(sorted(allowed))}")


def _limit(query: Mapping[str, str], default: int, highest: int) -> int:
    text = query.get("limit")
    if text is None:
        return default
    if not _LIMIT.fullmatch(text) or not 1 <= int(text) <= highest:
        raise ApiProblem(Problems.MALFORMED_REQUEST, f"limit must be an integer from 1 to {highest}")
    return int(text)


class Handlers:
    def __init__(self, config: GatewayConfig, backend: Backend, metrics: GatewayMetrics,
                 clock: Any = time.time) -> None:
        self.config = config
        self.backend = backend
        self.metrics = metrics
        self.auth = BearerAuth(config.token_entries())
        self.verifier = SignatureVerifier(config.webhook_secrets, config.signature_tolerance_s)
        self._clock = clock
        self._openapi = orjson.dumps(openapi_document())

    # -- helpers -------------------------------------------------------------------------

    def _require_command_path(self) -> None:
        if not (self.backend.results.ready and self.backend.publisher.healthy):
            raise ApiProblem(Problems.SERVICE_UNAVAILABLE, "not connected to Kafka yet; retry shortly",
                             headers={"Retry-After": "1"})

    def _require_read_model(self) -> None:
        if not self.backend.read_model.ready:
            raise ApiProblem(Problems.SERVICE_UNAVAILABLE, "the read model is still loading; retry shortly",
                             headers={"Retry-After": "1"})

    async def _lookup(self, execution_id: str) -> ExecutionHead:
        self._require_read_model()
        head: ExecutionHead | None = await self.backend.read_model.lookup(execution_id,
                                                                         self.config.read_sync_timeout_s)
        if head is None:
            raise ApiProblem(Problems.EXECUTION_NOT_FOUND, f"no execution {execution_id}", execution_id=execution_id)
        return head

    async def _read(self, execution_id: str, read: Any) -> Any:
        """`read()` from the read model, syncing once when it finds nothing (read-your-writes); 404
        when the execution is still unknown."""
        self._require_read_model()
        found = read()
        if found is None and await self.backend.read_model.sync(self.config.read_sync_timeout_s):
            found = read()
        if found is None:
            raise ApiProblem(Problems.EXECUTION_NOT_FOUND, f"no execution {execution_id}", execution_id=execution_id)
        return found

    async def read_body(self, request: web.Request, limit: int) -> bytes:
        """The raw JSON body: 415 unless declared JSON, 413 past `limit` bytes (refused from
        Content-Length before reading when it says so), 408 when it does not arrive within the
        body timeout. Never buffers more than `limit` bytes."""
        _require_json(request)
        declared = request.content_length
        if declared is not None and declared > limit:
            request[CLOSE_CONNECTION] = True
            raise ApiProblem(Problems.PAYLOAD_TOO_LARGE, f"the body may have at most {limit} bytes")
        body = bytearray()
        try:
            async with asyncio.timeout(self.config.body_timeout_s):
                while chunk := await request.content.readany():
                    body += chunk
                    if len(body) > limit:
                        request[CLOSE_CONNECTION] = True
                        raise ApiProblem(Problems.PAYLOAD_TOO_LARGE, f"the body may have at most {limit} bytes")
        except TimeoutError:
            request[CLOSE_CONNECTION] = True
            self.metrics.timeouts.labels("body").inc()
            raise ApiProblem(Problems.REQUEST_TIMEOUT,
                             f"the body did not arrive within {self.config.body_timeout_s:g}s") from None
        except (ConnectionError, web.RequestPayloadError) as broken:
            request[CLOSE_CONNECTION] = True
            raise ApiProblem(Problems.MALFORMED_REQUEST, f"the body could not be read: {broken}") from None
        return bytes(body)

    async def _publish(self, topic: str, key: str, value: bytes, correlation_id: str, kind: str, *,
                       parent: Any = None, links: Sequence[Link] = ()) -> None:
        """Produce and await the delivery report, in a PRODUCER span (a child of `parent`, by
        default of the request's span) whose trace context travels in the record's headers."""
        with TRACER.start_as_current_span(f"publish {topic}", context=parent, kind=SpanKind.PRODUCER, links=links,
                                          attributes={"messaging.system": "kafka",
                                                      "messaging.operation.type": "send",
                                                      "messaging.destination.name": topic,
                                                      "messaging.kafka.message.key": key}):
            headers = [(CORRELATION_ID_HEADER, correlation_id.encode("utf-8")), *tracing.kafka_headers()]
            await self._send(topic, key, value, headers, kind)

    async def _send(self, topic: str, key: str, value: bytes, headers: list[tuple[str, bytes]], kind: str) -> None:
        try:
            await self.backend.publisher.publish(topic, key, value, headers)
        except PublishError as error:
            self.metrics.publish_failures.labels(kind).inc()
            log.error("publishing to %s failed: %s", topic, error, extra={"execution_id": key})
            raise ApiProblem(Problems.SERVICE_UNAVAILABLE, "could not hand the request to Kafka; retry",
                             headers={"Retry-After": "1"}) from None

    async def _command(self, *, command: str, command_id: str, execution_id: str, value: bytes,
                       correlation_id: str, started: float) -> dict[str, Any] | None:
        """Publish a command and wait for its result; None if the wait bound passed first."""
        results = self.backend.results
        future = results.expect(command_id)
        self.metrics.pending_commands.inc()
        try:
            await self._publish(self.config.topics.execution_commands, execution_id, value, correlation_id,
                                "execution-commands")
            remaining = max(self.config.result_timeout_s - (time.monotonic() - started), 0.001)
            try:
                result = await asyncio.wait_for(future, remaining)
            except TimeoutError:
                self.metrics.command_timeouts.labels(command).inc()
                log.warning("%s command not answered within %.1fs", command, self.config.result_timeout_s,
                            extra={"execution_id": execution_id, "command_id": command_id})
                return None
            self.metrics.command_results.labels(command, result["outcome"]).inc()
            answer: dict[str, Any] = result
            return answer
        finally:
            results.discard(command_id)
            self.metrics.pending_commands.dec()

    def _execution_body(self, result: Mapping[str, Any]) -> dict[str, Any]:
        snapshot = result.get("execution")
        if snapshot is None:  # the processor always sends it with these outcomes
            raise ApiProblem(Problems.INTERNAL_ERROR, "the processor's answer carries no execution")
        return execution_view(snapshot)

    # -- POST /rebalance/executions ----------------------------------------------------------

    async def create_execution(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        key = request.headers.get(IDEMPOTENCY_KEY_HEADER)
        if key is None or not key.strip():
            raise ApiProblem(Problems.IDEMPOTENCY_KEY_MISSING, f"send an {IDEMPOTENCY_KEY_HEADER} header")
        if not _IDEMPOTENCY_KEY.fullmatch(key):
            raise ApiProblem(Problems.IDEMPOTENCY_KEY_INVALID,
                             f"{IDEMPOTENCY_KEY_HEADER} must be 1 to 255 visible ASCII characters without spaces")
        principal = request[PRINCIPAL]
        may_inline = self.config.inline_artifacts and principal.allows(Scope.INLINE_ARTIFACTS)
        raw = await self.read_body(request, self.config.artifact_max_body_bytes if may_inline
                                   else self.config.max_body_bytes)
        body = parse_body(raw, models.CreateExecutionRequest)
        try:
            policy = ExecutionPolicy.model_validate(body.execution_policy.model_dump(mode="json"))
        except ValidationError as invalid:
            raise ApiProblem(Problems.VALIDATION_FAILED, "invalid execution_policy", errors=[
                {"path": "execution_policy." + _path(d["loc"]), "code": d["type"], "message": d["msg"]}
                for d in invalid.errors(include_url=False, include_input=False)
            ]) from None
        if body.artifact is not None:
            self._authorize_inline_artifact(principal)
        # Who asks is who the token speaks for; the client's claim is recorded beside it, never trusted.
        actor = actor_of(principal.name, body.actor.channel, body.actor.requested_by)
        artifact = self._inline_artifact(body)
        correlation_id = request[CORRELATION_ID]
        execution_id = execution_id_for_key(key)
        request[EXECUTION_ID] = execution_id
        self._require_command_path()
        command_id = commands.new_command_id()
        value = commands.create_command(
            command_id=command_id, execution_id=execution_id, correlation_id=correlation_id,
            issued_at=datetime.now(UTC), idempotency_key=key,
            request_hash=request_hash(body.proposal_id, body.version_no, policy, actor,
                                      inline_artifact_hash=None if artifact is None else artifact.proposal_version_hash),
            proposal_id=body.proposal_id, version_no=body.version_no, policy=policy, actor=actor, artifact=artifact,
        )
        log.info("create execution", extra={
            "execution_id": execution_id, "command_id": command_id, "proposal_id": body.proposal_id,
            "version_no": body.version_no, "claimed_requested_by": body.actor.requested_by})
        result = await self._command(command="create", command_id=command_id, execution_id=execution_id,
                                     value=value, correlation_id=correlation_id, started=started)
        self.metrics.execution_latency_ms.labels("submit").observe((time.monotonic() - started) * 1000)
        outcome = "PENDING" if result is None else result["outcome"]
        self.metrics.executions_created.labels(outcome).inc()
        if result is None:
            return json_response({
                "execution_id": execution_id, "command_id": command_id, "status": "PENDING",
                "detail": "queued; GET the Location, or repeat this request with the same Idempotency-Key",
            }, 202, {"Location": _location(execution_id)})
        if outcome in ("CREATED", "REPLAYED"):
            return json_response(self._execution_body(result), 201 if outcome == "CREATED" else 200,
                                 {"Location": _location(result["execution_id"])})
        raise self._create_problem(result, execution_id, self.config.topics.approved_proposals)

    def _authorize_inline_artifact(self, principal: Principal) -> None:
        if not self.config.inline_artifacts:
            raise ApiProblem(Problems.INLINE_ARTIFACTS_DISABLED,
                             "inline artifacts are off (GATEWAY_INLINE_ARTIFACTS); the proposal version must be "
                             "published upstream")
        if not principal.allows(Scope.INLINE_ARTIFACTS):
            raise ApiProblem(Problems.INSUFFICIENT_SCOPE,
                             f"sending an inline artifact needs the scope {Scope.INLINE_ARTIFACTS.value}",
                             headers={"WWW-Authenticate": insufficient_scope_challenge(Scope.INLINE_ARTIFACTS)})

    def _inline_artifact(self, body: models.CreateExecutionRequest) -> ProposalArtifact | None:
        if body.artifact is None:
            return None
        try:
            artifact = parse_artifact(body.artifact.model_dump(mode="json"))
        except ArtifactInvalid as invalid:
            raise ApiProblem(Problems.INVALID_ARTIFACT, f"{len(invalid.problems)} problem(s) in the artifact", errors=[
                {"path": f"artifact.{p.path}", "code": p.code, "message": p.message} for p in invalid.problems
            ]) from None
        if (artifact.proposal_id, artifact.version_no) != (body.proposal_id, body.version_no):
            raise ApiProblem(Problems.INVALID_ARTIFACT, (
                f"the artifact is {artifact.proposal_id} v{artifact.version_no}, "
                f"the request names {body.proposal_id} v{body.version_no}"))
        return artifact

    @staticmethod
    def _create_problem(result: Mapping[str, Any], execution_id: str,
                        proposals_topic: str = "approved-proposals") -> ApiProblem:
        outcome = result["outcome"]
        problem = result.get("problem") or {}
        detail = problem.get("detail") or problem.get("title")
        existing = result.get("existing_execution_id")
        if outcome == "CONFLICT":
            if existing == execution_id:
                return ApiProblem(Problems.IDEMPOTENCY_KEY_CONFLICT, detail, existing_execution_id=existing)
            return ApiProblem(Problems.PROPOSAL_VERSION_IN_USE, detail, existing_execution_id=existing)
        if outcome == "NOT_FOUND":
            return ApiProblem(Problems.PROPOSAL_NOT_FOUND, (
                f"{detail or 'proposal version not found'}. The processor knows the versions published on the "
                f"{proposals_topic} topic (python -m tools.publish_proposal FILE); or send the version inline "
                f"as `artifact` in this request"))
        if outcome == "NOT_EXECUTABLE":
            return ApiProblem(Problems.PROPOSAL_NOT_EXECUTABLE, detail)
        if outcome == "INVALID":
            artifact = "artifact" in (problem.get("title") or "").lower()
            return ApiProblem(Problems.INVALID_ARTIFACT if artifact else Problems.INVALID_REQUEST, detail)
        return ApiProblem(Problems.COMMAND_FAILED, detail or f"outcome {outcome}")

    # -- GET /rebalance/executions/{execution_id} ----------------------------------------------

    async def get_execution(self, request: web.Request) -> web.Response:
        execution_id = request.match_info["execution_id"]
        model = self.backend.read_model
        head, tickets, rows = await self._read(execution_id, lambda: model.execution(execution_id, RECENT_EVENTS))
        # Tickets and rows are stored rendered: spliced into the body as they are.
        return json_response(execution_body(head.view, map(orjson.Fragment, tickets), map(orjson.Fragment, rows)))

    # -- GET /rebalance/executions/{execution_id}/events ------------------------------------------

    async def list_execution_events(self, request: web.Request) -> web.Response:
        execution_id = request.match_info["execution_id"]
        query = request.query
        _refuse_unknown_parameters(query, _EVENTS_PARAMETERS)
        after_text = query.get("after_seq", "0")
        if not _SEQ.fullmatch(after_text):
            raise ApiProblem(Problems.MALFORMED_REQUEST, "after_seq must be an integer from 0 to 999999999999")
        after_seq = int(after_text)
        limit = _limit(query, DEFAULT_EVENTS_LIMIT, MAX_EVENTS_LIMIT)
        model = self.backend.read_model
        rows, more = await self._read(execution_id, lambda: model.events(execution_id, after_seq, limit))
        head = model.get(execution_id)
        following = None
        if more:
            last = orjson.loads(rows[-1])["seq"]
            following = f"{events_path(execution_id)}?after_seq={last}&limit={limit}"
        return json_response({
            "execution_id": execution_id,
            "event_count": 0 if head is None else head.view["event_count"],
            "items": list(map(orjson.Fragment, rows)),
            "next": following,
            "limit": limit,
        })

    # -- GET /rebalance/executions ----------------------------------------------------------------

    async def list_executions(self, request: web.Request) -> web.Response:
        query = request.query
        _refuse_unknown_parameters(query, _LIST_PARAMETERS)  # a misspelt filter must not silently list everything
        proposal_id = query.get("proposal_id")
        if proposal_id is not None and not 1 <= len(proposal_id) <= 128:
            raise ApiProblem(Problems.MALFORMED_REQUEST, "proposal_id must be 1 to 128 characters")
        status = query.get("status")
        if status is not None and status not in _EXECUTION_STATES:
            raise ApiProblem(Problems.MALFORMED_REQUEST, f"status must be one of {', '.join(sorted(_EXECUTION_STATES))}")
        from_us = _timestamp_param(query, "from")
        to_us = _timestamp_param(query, "to")
        limit = _limit(query, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)
        digest = filters_digest(proposal_id, status, from_us, to_us)
        after = None
        if "cursor" in query:
            try:
                after = decode_cursor(query["cursor"], digest)
            except InvalidCursor as invalid:
                raise ApiProblem(Problems.INVALID_CURSOR, str(invalid)) from None
        self._require_read_model()
        # Everything committed before this request is listed: an execution whose create was
        # answered is never missing from a page (bounded wait; stale rather than failing).
        await self.backend.read_model.sync(self.config.read_sync_timeout_s)
        items, following = self.backend.read_model.page(
            limit=limit, after=after, proposal_id=proposal_id, status=status, from_us=from_us, to_us=to_us)
        return json_response({
            "items": items,
            "next_cursor": None if following is None else encode_cursor(following, digest),
            "limit": limit,
        })

    # -- POST /rebalance/executions/{execution_id}/cancel ----------------------------------------

    async def cancel_execution(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        execution_id = request.match_info["execution_id"]
        body = parse_body(await self.read_body(request, self.config.max_body_bytes), models.CancelExecutionRequest)
        command_id, result = await self.submit_cancel(
            execution_id, actor_of(request[PRINCIPAL].name, body.actor.channel, body.actor.requested_by), body.reason,
            request[CORRELATION_ID], started)
        headers = {"Location": _location(execution_id)}
        if result is None:
            return json_response({"execution_id": execution_id, "command_id": command_id, "cancel": "PENDING",
                                  "execution": None}, 202, headers)
        outcome = result["outcome"]
        detail = (result.get("problem") or {}).get("detail")
        if outcome == "CANCEL_ACCEPTED":
            return json_response({"execution_id": execution_id, "command_id": command_id, "cancel": "ACCEPTED",
                                  "execution": self._execution_body(result)}, 202, headers)
        if outcome == "CANCEL_REJECTED":
            raise ApiProblem(Problems.CANCEL_REJECTED, detail, execution_id=execution_id)
        if outcome == "NOT_FOUND":
            raise ApiProblem(Problems.EXECUTION_NOT_FOUND, detail, execution_id=execution_id)
        raise ApiProblem(Problems.COMMAND_FAILED, detail or f"outcome {outcome}")

    async def submit_cancel(self, execution_id: str, actor: Actor, reason: str | None, correlation_id: str,
                            started: float) -> tuple[str, dict[str, Any] | None]:
        """Publish a cancel of a known execution and wait (bounded) for its result: (command id,
        result or None when the wait bound passed). The API's cancel and the console's share it."""
        await self._lookup(execution_id)
        self._require_command_path()
        command_id = commands.new_command_id()
        value = commands.cancel_command(
            command_id=command_id, execution_id=execution_id, correlation_id=correlation_id,
            issued_at=datetime.now(UTC), actor=actor, reason=reason,
        )
        log.info("cancel execution", extra={"execution_id": execution_id, "command_id": command_id,
                                            "claimed_requested_by": actor.claimed_requested_by})
        result = await self._command(command="cancel", command_id=command_id, execution_id=execution_id,
                                     value=value, correlation_id=correlation_id, started=started)
        return command_id, result

    # -- POST /rebalance/executions/{execution_id}/events (OMS webhook) ----------------------------

    async def receive_order_event(self, request: web.Request) -> web.Response:
        execution_id = request.match_info["execution_id"]
        # What the signature header alone can tell (missing, malformed, stale) is checked before
        # a byte of the body is read: an unsigned upload costs nothing but its headers.
        try:
            signature = self.verifier.check_header(request.headers.get(SIGNATURE_HEADER), now=self._clock())
            raw = await self.read_body(request, self.config.webhook_max_body_bytes)
            self.verifier.verify_body(signature, raw)
        except SignatureError as error:
            self.metrics.webhook_events.labels(error.failure.value).inc()
            log.warning("webhook refused: %s", error, extra={"execution_id": execution_id})
            kind = Problems.STALE_SIGNATURE if error.failure is SignatureFailure.STALE else Problems.INVALID_SIGNATURE
            raise ApiProblem(kind, str(error)) from None
        except ApiProblem:
            self.metrics.webhook_events.labels("unreadable").inc()
            raise
        try:
            event_request = parse_body(raw, models.OrderEventRequest)
        except ApiProblem:
            self.metrics.webhook_events.labels("invalid").inc()
            raise
        if event_request.execution_id not in (None, execution_id):
            # The signed body names another execution than the URL: never apply it here.
            self.metrics.webhook_events.labels("execution_mismatch").inc()
            raise ApiProblem(Problems.VALIDATION_FAILED, "execution_id in the body differs from the path",
                             errors=[{"path": "execution_id", "code": "mismatch",
                                      "message": "must equal the execution id of the path"}])
        try:
            entry = await self._lookup(execution_id)
        except ApiProblem as problem:
            if problem.kind is Problems.EXECUTION_NOT_FOUND:
                self.metrics.webhook_events.labels("unknown_execution").inc()
            raise
        if not self.backend.read_model.has_ticket(execution_id, event_request.ticket_id):
            # Ticket ids are unique per execution: the signed ticket binds the event to one execution.
            self.metrics.webhook_events.labels("unknown_ticket").inc()
            raise ApiProblem(Problems.UNKNOWN_TICKET,
                             f"ticket {event_request.ticket_id} is not a ticket of execution {execution_id}",
                             execution_id=execution_id)
        correlation_id = self._adopt_execution_correlation(request, entry)
        parent, links = self._event_trace_parent(request, entry)
        event = webhook.order_event(event_request, execution_id, raw)
        value = commands.order_event_value(webhook.order_event_record(event))
        await self._publish(self.config.topics.order_events, execution_id, value, correlation_id, "order-events",
                            parent=parent, links=links)
        self.metrics.webhook_events.labels("accepted").inc()
        log.info("order event %s accepted", event.event_type.value, extra={
            "execution_id": execution_id, "ticket_id": event.ticket_id, "event_id": event.event_id,
            "external_order_id": event.external_order_id,
        })
        return json_response({"event_id": event.event_id, "execution_id": execution_id,
                              "ticket_id": event.ticket_id}, 202)

    @staticmethod
    def _adopt_execution_correlation(request: web.Request, entry: ExecutionHead) -> str:
        """The order event carries the execution's correlation id (its create's), so a create's
        correlation id reaches its fills. A webhook call without its own X-Correlation-Id takes
        it for its log lines and answer too."""
        correlation_id = entry.origin.correlation_id
        if correlation_id is None:
            return request[CORRELATION_ID]
        if not request[CORRELATION_OFFERED]:
            request[CORRELATION_ID] = correlation_id
            correlation_id_var.set(correlation_id)  # reset by the edge middleware with the request
        return correlation_id

    @staticmethod
    def _event_trace_parent(request: web.Request, entry: ExecutionHead) -> tuple[Any, list[Link]]:
        """The trace an order event continues: the OMS's, when its call carried a traceparent;
        else the execution's create (from its first state change), linked to this call's span."""
        if request[TRACE_OFFERED] or not entry.origin.trace_headers:
            return None, []
        parent = tracing.context_from_kafka(entry.origin.trace_headers)
        if not tracing.has_remote_parent(parent):
            return None, []
        return parent, [Link(get_current_span().get_span_context())]

    # -- operations -------------------------------------------------------------------------------

    async def openapi(self, request: web.Request) -> web.Response:
        return json_response(self._openapi)

    async def metrics_endpoint(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(self, request: web.Request) -> web.Response:
        alive, _, checks = self.backend.checks()
        return json_response({"status": "ok" if alive else "failing", "checks": checks}, 200 if alive else 503)

    async def readyz(self, request: web.Request) -> web.Response:
        _, ready, checks = self.backend.checks()
        return json_response({"status": "ready" if ready else "not-ready", "checks": checks}, 200 if ready else 503)


def actor_of(principal: str, channel: str, claimed: str | None = None) -> Actor:
    """The authenticated principal as requested_by; the client's own value kept only when it differs."""
    return Actor(requested_by=principal, channel=channel,
                 claimed_requested_by=claimed if claimed and claimed != principal else None)
