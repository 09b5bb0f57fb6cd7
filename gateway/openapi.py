"""The OpenAPI 3.1 document of the gateway, built from the pydantic models' JSON schemas.

Components come from `pydantic.json_schema.models_json_schema` (request bodies in validation
mode, responses in serialization mode); paths, parameters, status codes and security are
declared here, next to each other, so the document and the handlers are reviewed together.
Served at GET /openapi.json and checked against the running gateway by schemathesis.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from execution_domain.execution_state import ExecutionState
from gateway import models
from gateway.config import DEFAULT_EVENTS_LIMIT, DEFAULT_LIST_LIMIT, MAX_EVENTS_LIMIT, MAX_LIST_LIMIT
from gateway.cursor import MAX_CURSOR_LENGTH
from gateway.problems import PROBLEM_CONTENT_TYPE, Problems
from gateway.webhook import MAX_HEADER_LENGTH, SIGNATURE_HEADER

IDEMPOTENCY_KEY_PATTERN = r"^[!-~]{1,255}$"  # visible ASCII, no spaces, at most 255 characters
CORRELATION_ID_PATTERN = r"^[!-~]{1,128}$"

_REQUESTS: tuple[type[BaseModel], ...] = (
    models.CreateExecutionRequest, models.CancelExecutionRequest, models.OrderEventRequest,
)
_RESPONSES: tuple[type[BaseModel], ...] = (
    models.Execution, models.ExecutionPage, models.ExecutionEventPage, models.CommandPending, models.CancelAccepted,
    models.EventAccepted, models.Health, models.Problem,
)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


_CORRELATION_HEADER = {
    "description": "The request's X-Correlation-Id, or the one the gateway generated.",
    "schema": {"type": "string"},
}
_LOCATION_HEADER = {"description": "Where to GET the execution.", "schema": {"type": "string"}}


def _json(model: type[BaseModel], description: str, *, location: bool = False) -> dict[str, Any]:
    headers: dict[str, Any] = {"X-Correlation-Id": _CORRELATION_HEADER}
    if location:
        headers["Location"] = _LOCATION_HEADER
    return {"description": description, "headers": headers,
            "content": {"application/json": {"schema": _ref(model)}}}


def _problem(status: int) -> dict[str, Any]:
    kinds = sorted(kind.slug for kind in Problems.all() if kind.status == status)
    return {
        "description": "Problem details (RFC 9457); type is one of: " + ", ".join(kinds),
        "headers": {"X-Correlation-Id": _CORRELATION_HEADER},
        "content": {PROBLEM_CONTENT_TYPE: {"schema": _ref(models.Problem)}},
    }


def _errors(*statuses: int) -> dict[str, Any]:
    out = {str(status): _problem(status) for status in statuses}
    out["default"] = {
        "description": "Any other error, as problem details (RFC 9457).",
        "headers": {"X-Correlation-Id": _CORRELATION_HEADER},
        "content": {PROBLEM_CONTENT_TYPE: {"schema": _ref(models.Problem)}},
    }
    return out


_CORRELATION_PARAM = {
    "name": "X-Correlation-Id", "in": "header", "required": False,
    "description": "Traces the call through Kafka and the logs; echoed on every response. Generated when "
                   "absent, and replaced by a generated one when it is not 1 to 128 visible ASCII characters.",
    "schema": {"type": "string"},
}
_TRACE_PARAMS = [
    {"name": "traceparent", "in": "header", "required": False,
     "description": "W3C Trace Context: the caller's span. The request's span continues it (a new trace when it "
                    "is absent, malformed or repeated) and the Kafka records it leads to carry it.",
     "schema": {"type": "string"}},
    {"name": "tracestate", "in": "header", "required": False,
     "description": "W3C Trace Context vendor state, carried with traceparent.", "schema": {"type": "string"}},
]
_EXECUTION_ID_PARAM = {
    "name": "execution_id", "in": "path", "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": 128},
}
_BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]


def _body(model: type[BaseModel]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(model)}}}


def _paths() -> dict[str, Any]:
    statuses = [state.value for state in ExecutionState]
    return {
        "/rebalance/executions": {
            "post": {
                "operationId": "createExecution",
                "summary": "Create an execution of a proposal version (RFC §5.1)",
                "description": "Idempotent by Idempotency-Key: the execution id derives from the key. The same "
                               "key and body again returns the same execution with 200; the same key with "
                               "another body is a 409. If the processor does not answer within the wait "
                               "bound the answer is 202 with a Location to poll (or retry the same request).",
                "security": _BEARER,
                "parameters": [
                    {"name": "Idempotency-Key", "in": "header", "required": True,
                     "description": "Client-chosen key of this create; visible ASCII, 1 to 255 characters.",
                     "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN}},
                    _CORRELATION_PARAM, *_TRACE_PARAMS,
                ],
                "requestBody": _body(models.CreateExecutionRequest),
                "responses": {
                    "201": _json(models.Execution, "Created.", location=True),
                    "200": _json(models.Execution, "Replay: this key already created this execution "
                                                   "from the same request.", location=True),
                    "202": _json(models.CommandPending, "Queued; not answered within the wait bound.",
                                 location=True),
                    **_errors(400, 401, 403, 404, 408, 409, 413, 415, 422, 503),
                },
            },
            "get": {
                "operationId": "listExecutions",
                "summary": "List executions, newest first (RFC §5.3)",
                "security": _BEARER,
                "parameters": [
                    {"name": "proposal_id", "in": "query", "required": False,
                     "schema": {"type": "string", "minLength": 1, "maxLength": 128}},
                    {"name": "status", "in": "query", "required": False,
                     "schema": {"type": "string", "enum": statuses}},
                    {"name": "from", "in": "query", "required": False,
                     "description": "created_at >= from (RFC 3339 with offset).",
                     "schema": {"type": "string", "format": "date-time"}},
                    {"name": "to", "in": "query", "required": False,
                     "description": "created_at < to (RFC 3339 with offset).",
                     "schema": {"type": "string", "format": "date-time"}},
                    {"name": "limit", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIST_LIMIT,
                                "default": DEFAULT_LIST_LIMIT}},
                    {"name": "cursor", "in": "query", "required": False,
                     "description": "next_cursor of the previous page, with the same filters.",
                     "schema": {"type": "string", "minLength": 1, "maxLength": MAX_CURSOR_LENGTH}},
                    _CORRELATION_PARAM, *_TRACE_PARAMS,
                ],
                "responses": {
                    "200": _json(models.ExecutionPage, "A page of executions."),
                    **_errors(400, 401, 403, 503),
                },
            },
        },
        "/rebalance/executions/{execution_id}": {
            "get": {
                "operationId": "getExecution",
                "summary": "An execution: summary, tickets with status, lifecycle events (RFC §5.2)",
                "description": "The summary with its counters, every ticket, and the most recent lifecycle rows "
                               "(at most 50); the whole log is paged at links.events.",
                "security": _BEARER,
                "parameters": [_EXECUTION_ID_PARAM, _CORRELATION_PARAM, *_TRACE_PARAMS],
                "responses": {
                    "200": _json(models.Execution, "The execution."),
                    **_errors(400, 401, 403, 404, 503),
                },
            },
        },
        "/rebalance/executions/{execution_id}/events": {
            "get": {
                "operationId": "listExecutionEvents",
                "summary": "An execution's whole lifecycle log, paged, ascending by seq",
                "security": _BEARER,
                "parameters": [
                    _EXECUTION_ID_PARAM,
                    {"name": "after_seq", "in": "query", "required": False,
                     "description": "Rows with seq > after_seq (0: from the first).",
                     "schema": {"type": "integer", "minimum": 0, "maximum": 999_999_999_999, "default": 0}},
                    {"name": "limit", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_EVENTS_LIMIT,
                                "default": DEFAULT_EVENTS_LIMIT}},
                    _CORRELATION_PARAM, *_TRACE_PARAMS,
                ],
                "responses": {
                    "200": _json(models.ExecutionEventPage, "A page of the log."),
                    **_errors(400, 401, 403, 404, 503),
                },
            },
            "post": {
                "operationId": "receiveOrderEvent",
                "summary": "OMS webhook: one order event (RFC §5.4 option A)",
                "description": "Authenticated by an HMAC-SHA256 signature, not a bearer token: "
                               f"{SIGNATURE_HEADER}: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, \"<t>.\" + "
                               "raw body)>. Accepted within 300 s of the server clock. The event is "
                               "published to the order-events topic before the 202.",
                "security": [{"webhookSignature": []}],
                "parameters": [
                    _EXECUTION_ID_PARAM,
                    {"name": SIGNATURE_HEADER, "in": "header", "required": True,
                     "schema": {"type": "string", "maxLength": MAX_HEADER_LENGTH}},
                    _CORRELATION_PARAM, *_TRACE_PARAMS,
                ],
                "requestBody": _body(models.OrderEventRequest),
                "responses": {
                    "202": _json(models.EventAccepted, "Published to the order-events topic."),
                    **_errors(400, 401, 404, 408, 413, 415, 422, 503),
                },
            },
        },
        "/rebalance/executions/{execution_id}/cancel": {
            "post": {
                "operationId": "cancelExecution",
                "summary": "Request cancellation of an execution's open tickets",
                "security": _BEARER,
                "parameters": [_EXECUTION_ID_PARAM, _CORRELATION_PARAM, *_TRACE_PARAMS],
                "requestBody": _body(models.CancelExecutionRequest),
                "responses": {
                    "202": _json(models.CancelAccepted, "Cancellation requested.", location=True),
                    **_errors(400, 401, 403, 404, 408, 409, 413, 415, 422, 503),
                },
            },
        },
        "/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This document",
                "security": _BEARER,
                "parameters": [_CORRELATION_PARAM],
                "responses": {
                    "200": {"description": "OpenAPI 3.1 document.", "headers": {"X-Correlation-Id": _CORRELATION_HEADER},
                            "content": {"application/json": {"schema": {"type": "object"}}}},
                    **_errors(401, 403),
                },
            },
        },
        "/asyncapi.json": {
            "get": {
                "operationId": "getAsyncApi",
                "summary": "The AsyncAPI 3.0 document of the Kafka topics (wire.asyncapi)",
                "security": _BEARER,
                "parameters": [_CORRELATION_PARAM],
                "responses": {
                    "200": {"description": "AsyncAPI 3.0 document.", "headers": {"X-Correlation-Id": _CORRELATION_HEADER},
                            "content": {"application/json": {"schema": {"type": "object"}}}},
                    **_errors(401),
                },
            },
        },
        "/problems": {
            "get": {
                "operationId": "listProblemTypes",
                "summary": "Every problem type: its URI, status, title and when it is answered (no authentication)",
                "security": [],
                "parameters": [_CORRELATION_PARAM],
                "responses": {
                    "200": {"description": "The catalogue.", "headers": {"X-Correlation-Id": _CORRELATION_HEADER},
                            "content": {"application/json": {"schema": {"type": "object"}}}},
                },
            },
        },
        "/problems/{slug}": {
            "get": {
                "operationId": "getProblemType",
                "summary": "One problem type; the slug is the last segment of its `type` URI (no authentication)",
                "security": [],
                "parameters": [_CORRELATION_PARAM, {"name": "slug", "in": "path", "required": True,
                                                    "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "The problem type.", "headers": {"X-Correlation-Id": _CORRELATION_HEADER},
                            "content": {"application/json": {"schema": {"type": "object"}}}},
                    **_errors(404),
                },
            },
        },
        "/metrics": {
            "get": {
                "operationId": "getMetrics",
                "summary": "Prometheus metrics (no authentication)",
                "security": [],
                "parameters": [_CORRELATION_PARAM],
                "responses": {
                    "200": {"description": "Prometheus text exposition format.",
                            "headers": {"X-Correlation-Id": _CORRELATION_HEADER},
                            "content": {"text/plain": {"schema": {"type": "string"}}}},
                    **_errors(),
                },
            },
        },
        "/healthz": {
            "get": {
                "operationId": "getHealth",
                "summary": "Liveness (no authentication)",
                "security": [],
                "parameters": [_CORRELATION_PARAM],
                "responses": {
                    "200": _json(models.Health, "Alive."),
                    "503": _json(models.Health, "A background client died."),
                },
            },
        },
        "/readyz": {
            "get": {
                "operationId": "getReadiness",
                "summary": "Readiness (no authentication)",
                "security": [],
                "parameters": [_CORRELATION_PARAM],
                "responses": {
                    "200": _json(models.Health, "Ready: Kafka clients up, read model caught up."),
                    "503": _json(models.Health, "Not ready."),
                },
            },
        },
    }


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    _, definitions = models_json_schema(
        [(model, "validation") for model in _REQUESTS] + [(model, "serialization") for model in _RESPONSES],
        ref_template="#/components/schemas/{model}",
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Execution integration gateway",
            "version": "1.0.0",
            "description": "RFC-0014I §5: create, read, list and cancel executions of approved rebalance "
                           "proposals; the OMS webhook. Errors are RFC 9457 problem details "
                           "(application/problem+json) with a stable type. See docs/gateway.md.",
        },
        "servers": [{"url": "/"}],
        "security": _BEARER,
        "paths": _paths(),
        "components": {
            "schemas": definitions["$defs"],
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer",
                               "description": "A token of a principal (GATEWAY_API_PRINCIPALS_FILE, or a bare "
                                              "GATEWAY_API_TOKENS token). Scopes: executions:read (GET, list), "
                                              "executions:write (create, cancel), artifacts:inline (a create with "
                                              "an inline artifact, when the gateway accepts them); 403 "
                                              "insufficient-scope otherwise. actor.requested_by is the principal."},
                "webhookSignature": {"type": "apiKey", "in": "header", "name": SIGNATURE_HEADER,
                                     "description": "t=<unix>,v1=<hex HMAC-SHA256 over \"<t>.<raw body>\">"},
            },
        },
    }
