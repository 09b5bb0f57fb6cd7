"""Reference documents the gateway serves beside `/openapi.json`: the AsyncAPI document of the
Kafka topics (`/asyncapi.json`) and the catalogue of problem types (`/problems`,
`/problems/{slug}`: what each `type` URI of a problem answer means; the slug is the URI's
last segment). The problem pages need no token: a client that got a problem can look it up."""

from __future__ import annotations

import orjson
from aiohttp import web

from gateway.problems import Problems, ProblemType
from wire.asyncapi import asyncapi_document

PROBLEM_ROUTES = frozenset({"listProblemTypes", "getProblemType"})

# When each problem is answered and what a client does about it (docs/gateway.md has the context).
WHEN: dict[str, str] = {
    "malformed-request": "The body is not JSON, or a query parameter is malformed. Fix the request.",
    "idempotency-key-missing": "A create without an Idempotency-Key header. Send one (1-255 visible ASCII).",
    "idempotency-key-invalid": "The Idempotency-Key is longer than 255 characters or has other characters.",
    "invalid-cursor": "The list cursor is not one this gateway issued, or was issued for other filters.",
    "unauthorized": "No valid bearer token. Send Authorization: Bearer <token>.",
    "invalid-signature": "A webhook call whose X-Signature is missing, malformed or matches no secret.",
    "stale-signature": "A webhook signature whose timestamp is outside the accepted window (300 s by default).",
    "not-found": "No such path.",
    "execution-not-found": "No execution with this id (yet: after a 202, poll until it exists).",
    "proposal-not-found": ("The processor knows no such proposal version: publish it on the approved-proposals "
                           "topic (python -m tools.publish_proposal FILE), or send it inline as `artifact` (a token with "
                           "artifacts:inline, while the gateway accepts them)."),
    "method-not-allowed": "The path exists, the method does not; see the Allow header.",
    "idempotency-key-conflict": ("The Idempotency-Key was used before with another body; existing_execution_id "
                                 "names that execution. Use a new key for a new request."),
    "proposal-version-in-use": ("Another live execution holds the proposal version (existing_execution_id); "
                                "it is released when that execution ends REJECTED or CANCELLED."),
    "cancel-rejected": "Nothing is left to cancel, or the execution is still being admitted.",
    "payload-too-large": ("The body exceeds its limit: 16 KiB for a webhook event, 64 KiB for a create or cancel "
                          "(GATEWAY_MAX_BODY_BYTES), 1 MiB for a create that may carry an inline artifact."),
    "duplicate-header": ("Authorization, Idempotency-Key, X-Signature, Content-Type, Content-Length, "
                         "Transfer-Encoding or X-Correlation-Id was sent more than once. Send each once."),
    "insufficient-scope": ("The token is valid but its scopes do not allow this call (WWW-Authenticate names the "
                           "scope); an inline artifact needs artifacts:inline."),
    "inline-artifacts-disabled": ("This gateway accepts no inline artifacts (GATEWAY_INLINE_ARTIFACTS): publish the "
                                  "proposal version upstream (python -m tools.publish_proposal FILE)."),
    "request-timeout": ("The request's headers or body did not arrive in time (GATEWAY_HEADER_TIMEOUT_S, "
                        "GATEWAY_BODY_TIMEOUT_S); the connection is closed. Send the request again."),
    "unsupported-media-type": "A body not declared as Content-Type: application/json (UTF-8). Declare it.",
    "validation-failed": "The body does not validate; `errors` lists every problem with its path.",
    "invalid-artifact": "The inline artifact is invalid (e.g. HASH_MISMATCH) or names another version.",
    "proposal-not-executable": "The version's gate decision is not EXECUTION_READY.",
    "invalid-request": "The processor refused the request (e.g. an invalid execution policy).",
    "unknown-ticket": "A webhook event for a ticket that is not part of the execution.",
    "command-failed": "The processor failed to apply the command. Retrying with the same key is safe.",
    "internal-error": "An unexpected error in the gateway; the correlation_id finds its log lines.",
    "service-unavailable": "Kafka is not reachable or the read model is loading; retry after Retry-After.",
}


def problem_page(kind: ProblemType) -> dict[str, object]:
    return {"type": kind.uri, "slug": kind.slug, "status": kind.status, "title": kind.title,
            "when": WHEN.get(kind.slug, "See docs/gateway.md."), "documentation": f"/problems/{kind.slug}"}


class ReferenceHandlers:
    def __init__(self) -> None:
        self._asyncapi = orjson.dumps(asyncapi_document())
        self._pages = {kind.slug: problem_page(kind) for kind in Problems.all()}

    async def asyncapi(self, request: web.Request) -> web.Response:
        return web.Response(body=self._asyncapi, content_type="application/json")

    async def problem_types(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps({"items": list(self._pages.values())}), content_type="application/json")

    async def problem_type(self, request: web.Request) -> web.Response:
        page = self._pages.get(request.match_info["slug"])
        if page is None:
            raise web.HTTPNotFound()
        return web.Response(body=orjson.dumps(page), content_type="application/json")


def add_routes(router: web.UrlDispatcher) -> None:
    handlers = ReferenceHandlers()
    router.add_get("/asyncapi.json", handlers.asyncapi, name="getAsyncApi", allow_head=False)
    router.add_get("/problems", handlers.problem_types, name="listProblemTypes", allow_head=False)
    router.add_get("/problems/{slug}", handlers.problem_type, name="getProblemType", allow_head=False)
