"""The aiohttp application: routes, and the middlewares every request passes through.

- `edge` (outermost): tells the connection guard the request's headers are in (and when it is
  answered); refuses repeated security-relevant headers (400); the correlation id (taken from
  X-Correlation-Id when well-formed, else generated; echoed on every response and set for every
  log line of the request); a SERVER span per request, continuing the caller's W3C
  `traceparent` or starting a new trace; problem details for every error (including aiohttp's
  own 404/405/413 and unexpected exceptions); request metrics per route and status; one
  access-log line. Never logs headers or bodies.
- `authenticate`: a bearer token on every route except /healthz, /readyz, /metrics, the
  webhook (which verifies its HMAC signature itself) and the operator console (its own session
  sign-in, `gateway.console`), and the scope the route needs (403).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web
from opentelemetry.trace import SpanKind, Status, StatusCode, get_current_span

from gateway import reference
from gateway.auth import CHALLENGE, Scope, insufficient_scope_challenge
from gateway.backend import KafkaBackend
from gateway.config import GatewayConfig
from gateway.console.app import CONSOLE_ROUTE_PREFIX, PREFIX, create_console
from gateway.console.deadletters import DeadLetterFeed
from gateway.handlers import (
    CLOSE_CONNECTION,
    CORRELATION_ID,
    CORRELATION_OFFERED,
    EXECUTION_ID,
    PRINCIPAL,
    TRACE_OFFERED,
    TRACER,
    Backend,
    Handlers,
)
from gateway.logging_context import correlation_id_var, principal_var
from gateway.metrics import GatewayMetrics
from gateway.openapi import CORRELATION_ID_PATTERN
from gateway.problems import ApiProblem, Problems, from_http_exception, problem_response
from gateway.server import ConnectionGuard
from gateway.webhook import SIGNATURE_HEADER
from observability import tracing

log = logging.getLogger("gateway.access")
errors_log = logging.getLogger("gateway.errors")

CORRELATION_HEADER = "X-Correlation-Id"
_CORRELATION_ID = re.compile(CORRELATION_ID_PATTERN)
PUBLIC_ROUTES = frozenset({"getHealth", "getReadiness", "getMetrics"}) | reference.PROBLEM_ROUTES
WEBHOOK_ROUTE = "receiveOrderEvent"
# The scope each advisor route needs (gateway.auth); an unknown path only needs a valid token.
ROUTE_SCOPES = {
    "createExecution": Scope.WRITE, "cancelExecution": Scope.WRITE,
    "getExecution": Scope.READ, "listExecutions": Scope.READ, "listExecutionEvents": Scope.READ,
    "getOpenApi": Scope.READ,
}
# Headers whose repetition would let one reader see another value than the next: refused.
SINGLE_HEADERS = ("Authorization", "Idempotency-Key", SIGNATURE_HEADER, "Content-Type", "Content-Length",
                  "Transfer-Encoding", CORRELATION_HEADER)

HANDLERS = web.AppKey("handlers", Handlers)
BACKEND = web.AppKey("backend", object)
GUARD = web.AppKey("connection_guard", ConnectionGuard)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _correlation_id(request: web.Request) -> tuple[str, bool]:
    offered = request.headers.get(CORRELATION_HEADER)
    if offered is not None and _CORRELATION_ID.fullmatch(offered):
        return offered, True
    return uuid.uuid4().hex, False


def _route_label(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def _refuse_repeated_headers(request: web.Request) -> None:
    repeated = [name for name in SINGLE_HEADERS if len(request.headers.getall(name, ())) > 1]
    if repeated:
        raise ApiProblem(Problems.DUPLICATE_HEADER, f"send {', '.join(repeated)} once")


@web.middleware
async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    guard = request.app[GUARD]
    guard.request_started(request.transport)
    correlation_id, offered = _correlation_id(request)
    request[CORRELATION_ID] = correlation_id
    request[CORRELATION_OFFERED] = offered
    token = correlation_id_var.set(correlation_id)
    route = _route_label(request)
    parent = tracing.context_from_http(request.headers)
    request[TRACE_OFFERED] = tracing.has_remote_parent(parent)
    try:
        with TRACER.start_as_current_span(f"{request.method} {route}", context=parent, kind=SpanKind.SERVER,
                                          attributes={"http.request.method": request.method, "http.route": route,
                                                      "url.path": request.path}) as span:
            try:
                _refuse_repeated_headers(request)
                response = await handler(request)
            except ApiProblem as problem:
                response = problem_response(problem, instance=request.path, correlation_id=request[CORRELATION_ID])
            except web.HTTPException as http_error:
                if http_error.status < 400:
                    raise
                response = problem_response(from_http_exception(http_error), instance=request.path,
                                            correlation_id=request[CORRELATION_ID])
            except asyncio.CancelledError:
                raise
            except Exception:
                errors_log.exception("unhandled error in %s %s", request.method, route)
                response = problem_response(ApiProblem(Problems.INTERNAL_ERROR, "unexpected error"),
                                            instance=request.path, correlation_id=request[CORRELATION_ID])
            response.headers[CORRELATION_HEADER] = request[CORRELATION_ID]  # the webhook may adopt the execution's
            if request.get(CLOSE_CONNECTION):
                response.force_close()
            span.set_attribute("http.response.status_code", response.status)
            span.set_attribute("correlation_id", request[CORRELATION_ID])
            if response.status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            status = str(response.status)
            elapsed = time.perf_counter() - started
            metrics = request.app[HANDLERS].metrics
            metrics.http_requests.labels(route, request.method, status).inc()
            metrics.http_latency.labels(route, request.method, status).observe(elapsed)
            level = logging.DEBUG if request.match_info.route.name in PUBLIC_ROUTES else logging.INFO  # probes
            principal = request.get(PRINCIPAL)
            log.log(level, "%s %s %s %.1fms", request.method, route, status, elapsed * 1000,
                    extra={"execution_id": request.match_info.get("execution_id") or request.get(EXECUTION_ID),
                           "principal": None if principal is None else principal.name})
            return response
    finally:
        correlation_id_var.reset(token)
        guard.request_finished(request.transport)


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    name = request.match_info.route.name
    if name in PUBLIC_ROUTES or name == WEBHOOK_ROUTE or (name or "").startswith(CONSOLE_ROUTE_PREFIX):
        return await handler(request)
    principal = request.app[HANDLERS].auth.authenticate(request.headers.get("Authorization"))
    if principal is None:
        raise ApiProblem(Problems.UNAUTHORIZED, "send Authorization: Bearer <token>",
                         headers={"WWW-Authenticate": CHALLENGE})
    request[PRINCIPAL] = principal
    get_current_span().set_attribute("enduser.id", principal.name)
    token = principal_var.set(principal.name)
    try:
        scope = ROUTE_SCOPES.get(name or "")
        if scope is not None and not principal.allows(scope):
            raise ApiProblem(Problems.INSUFFICIENT_SCOPE, f"this needs the scope {scope.value}",
                             headers={"WWW-Authenticate": insufficient_scope_challenge(scope)})
        return await handler(request)
    finally:
        principal_var.reset(token)


def create_app(config: GatewayConfig, *, backend: Backend | None = None, metrics: GatewayMetrics | None = None,
               clock: Callable[[], float] = time.time) -> web.Application:
    """The gateway. Without `backend`, it starts its Kafka clients with the app and stops them
    on cleanup; tests may pass a fake."""
    metrics = metrics or GatewayMetrics()
    backend = backend or KafkaBackend(config, metrics)
    handlers = Handlers(config, backend, metrics, clock)
    app = web.Application(middlewares=[edge, authenticate], client_max_size=config.largest_body_bytes)
    app[HANDLERS] = handlers
    app[BACKEND] = backend
    app[GUARD] = ConnectionGuard(config.max_connections, config.header_timeout_s, metrics)
    router = app.router
    router.add_post("/rebalance/executions", handlers.create_execution, name="createExecution")
    router.add_get("/rebalance/executions", handlers.list_executions, name="listExecutions", allow_head=False)
    router.add_get("/rebalance/executions/{execution_id}", handlers.get_execution, name="getExecution",
                   allow_head=False)
    router.add_post("/rebalance/executions/{execution_id}/events", handlers.receive_order_event,
                    name=WEBHOOK_ROUTE)
    router.add_get("/rebalance/executions/{execution_id}/events", handlers.list_execution_events,
                   name="listExecutionEvents", allow_head=False)
    router.add_post("/rebalance/executions/{execution_id}/cancel", handlers.cancel_execution,
                    name="cancelExecution")
    router.add_get("/openapi.json", handlers.openapi, name="getOpenApi", allow_head=False)
    reference.add_routes(router)  # /asyncapi.json, /problems, /problems/{slug}
    router.add_get("/metrics", handlers.metrics_endpoint, name="getMetrics", allow_head=False)
    router.add_get("/healthz", handlers.healthz, name="getHealth", allow_head=False)
    router.add_get("/readyz", handlers.readyz, name="getReadiness", allow_head=False)
    if config.console:  # the operator console (docs/console.md), signed in by session cookie
        feed = None
        if isinstance(backend, KafkaBackend):
            feed = DeadLetterFeed(config.kafka, config.topics,
                                  f"{config.application_id}-gateway-{config.instance_id}-dead-letters",
                                  config.console_dead_letters)

        async def to_console(_request: web.Request) -> web.StreamResponse:
            raise web.HTTPSeeOther(f"{PREFIX}/")
        router.add_get(PREFIX, to_console, name=f"{CONSOLE_ROUTE_PREFIX}redirect", allow_head=False)  # before the sub-app
        app.add_subapp(PREFIX, create_console(handlers, dead_letters=feed))

    start = getattr(backend, "start", None)
    close = getattr(backend, "close", None)
    if start is not None:
        async def start_backend(_app: web.Application) -> None:
            start(asyncio.get_running_loop())
        app.on_startup.append(start_backend)
    if close is not None:
        async def close_backend(_app: web.Application) -> None:
            await asyncio.get_running_loop().run_in_executor(None, close)
        app.on_cleanup.append(close_backend)
    return app
