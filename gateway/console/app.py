"""The operator console: server-rendered pages (Jinja2, autoescaped) under /console, a small
script of our own for live updates (EventSource on /console/stream, fed by `live.ChangeHub`),
served by the gateway in its own process from its read model (docs/console.md).

Mounted as an aiohttp sub-application, so its middleware (`guard`) sees only console requests:
sign-in by session cookie (`sessions`), the Origin and CSRF checks of every POST, the security
headers (`security`), and error pages in HTML instead of problem+json. The gateway's `edge`
middleware still wraps every console request (correlation id, span, metrics, access log); its
bearer-token middleware leaves console routes to this one (`CONSOLE_ROUTE_PREFIX`).

Everything is read-only but Cancel, which needs the `executions:write` scope, a confirmation
page and the session's CSRF token, and goes through the same path as the API's cancel
(`Handlers.submit_cancel`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
import orjson
from aiohttp import web

from execution_domain import ExecutionState
from gateway.auth import Scope
from gateway.console import security
from gateway.console.deadletters import DeadLetterFeed
from gateway.console.graph import Graph, layout
from gateway.console.live import ChangeHub, HubFull
from gateway.console.sessions import Session, SessionStore
from gateway.cursor import Cursor, InvalidCursor, decode_cursor, encode_cursor, filters_digest
from gateway.handlers import CORRELATION_ID, Handlers, actor_of
from gateway.problems import ApiProblem
from gateway.read_store import micros

log = logging.getLogger(__name__)

PREFIX = "/console"
CONSOLE_ROUTE_PREFIX = "console."  # route names; the gateway's bearer middleware skips these
PUBLIC = frozenset({"console.login", "console.login.submit", "console.static", "console.root"})
CHANNEL = "OPS_CONSOLE"  # actor.channel of a cancel sent from the console
LIST_PAGE = 25
EVENTS_PAGE = 50
TICKETS_PAGE = 100
KEEP_ALIVE_S = 15.0
HERE = Path(__file__).parent
STATES = tuple(state.value for state in ExecutionState)
CANCEL_NOTICES = {
    "accepted": "Cancel accepted: open orders go to PENDING_CANCEL; the OMS decides each.",
    "pending": "Cancel sent; the processor has not answered yet. The page updates when it does.",
    "rejected": "Cancel refused: nothing is left to cancel.",
}

SESSION = web.RequestKey("console_session", Session)
CONSOLE = web.AppKey("console", object)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Console:
    def __init__(self, handlers: Handlers, dead_letters: DeadLetterFeed | None, clock: Callable[[], float]) -> None:
        self.handlers = handlers
        self.config = handlers.config
        self.read_model = handlers.backend.read_model
        self.sessions = SessionStore(idle_s=self.config.console_session_idle_s)
        self.hub = ChangeHub()
        self.dead_letters = dead_letters
        self.clock = clock
        self.secure = self.config.console_secure_cookie
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined,
            trim_blocks=True, lstrip_blocks=True)
        self.templates.globals.update(prefix=PREFIX, csrf_field=security.CSRF_FIELD)
        subscribe = getattr(self.read_model, "subscribe", None)
        if subscribe is not None:
            subscribe(self.hub.publish)

    # -- rendering ------------------------------------------------------------------------------

    def render(self, request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
        session = request.get(SESSION)
        body = self.templates.get_template(template).render(
            principal=None if session is None else session.principal, csrf_token=None if session is None
            else session.csrf_token, **context)
        return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")

    def fragment(self, request: web.Request, template: str, **context: Any) -> str:
        session = request.get(SESSION)
        return self.templates.get_template(template).render(
            principal=None if session is None else session.principal, **context)

    # -- middleware -----------------------------------------------------------------------------

    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        name = request.match_info.route.name or ""
        try:
            if name not in PUBLIC:
                session = self.sessions.get(request.cookies.get(security.cookie_name(self.secure)), self.clock())
                if session is None:
                    response = self._sign_in_first(request)
                    security.set_security_headers(response, static=False, secure=self.secure)
                    return response
                request[SESSION] = session
            if request.method == "POST":
                await self._check_post(request)
            response = await handler(request)
        except ApiProblem as problem:
            response = self.render(request, "error.html", problem.kind.status, title=problem.kind.title,
                                   detail=str(problem))
        except web.HTTPException as http_error:
            if http_error.status < 400:
                security.set_security_headers(http_error, static=False, secure=self.secure)
                raise
            response = self.render(request, "error.html", http_error.status, title=http_error.reason,
                                   detail=http_error.text or http_error.reason)
        if not response.prepared:  # a live stream set its headers before it started
            security.set_security_headers(response, static=name == "console.static", secure=self.secure)
        return response

    def _sign_in_first(self, request: web.Request) -> web.StreamResponse:
        """No live session: a page is sent to the sign-in page (and back after it); anything else
        (fragments, the stream, a POST) gets 401 and no data."""
        if request.method == "GET" and request.match_info.route.name in PAGES:
            location = f"{PREFIX}/login?" + urlencode({"next": request.path_qs})
            return web.Response(status=303, headers={"Location": location})
        return self.render(request, "login.html", 401, error="Sign in first.", next=f"{PREFIX}/executions")

    async def _check_post(self, request: web.Request) -> None:
        if not security.same_origin(request):
            raise web.HTTPForbidden(reason="Forbidden", text="This form was sent from another site.")
        session = request.get(SESSION)
        if session is None:  # sign-in: the Origin check above is its CSRF defence
            return
        form = await request.post()
        offered = form.get(security.CSRF_FIELD)
        if not isinstance(offered, str) or not session.csrf_matches(offered):
            raise web.HTTPForbidden(reason="Forbidden",
                                    text="The form's CSRF token is missing or out of date: reload the page and retry.")

    # -- sign-in --------------------------------------------------------------------------------

    async def root(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPSeeOther(f"{PREFIX}/executions")

    async def login_page(self, request: web.Request) -> web.Response:
        return self.render(request, "login.html", error=None,
                           next=security.safe_next(request.query.get("next"), PREFIX))

    async def login(self, request: web.Request) -> web.Response:
        form = await request.post()
        target = security.safe_next(str(form.get("next") or ""), PREFIX)
        if not self.secure and not security.loopback_peer(request):
            return self.render(request, "login.html", 403, next=target, error=(
                "Sign-in over plain HTTP is accepted from this machine only. Serve the console over TLS "
                "and set GATEWAY_CONSOLE_SECURE_COOKIE=true."))
        token = str(form.get("token") or "").strip()
        principal = self.handlers.auth.authenticate(f"Bearer {token}") if token else None
        if principal is None:
            log.info("console sign-in refused")
            return self.render(request, "login.html", 401, next=target, error="That token is not valid.")
        if not principal.allows(Scope.READ):
            return self.render(request, "login.html", 403, next=target,
                               error=f"This token lacks the scope {Scope.READ.value}.")
        self.sessions.end(request.cookies.get(security.cookie_name(self.secure)))  # never keep an offered id
        session_id, _ = self.sessions.create(principal, self.clock())
        log.info("console sign-in", extra={"principal": principal.name})
        response = web.Response(status=303, headers={"Location": target})
        security.set_session_cookie(response, session_id, secure=self.secure)
        return response

    async def logout(self, request: web.Request) -> web.Response:
        self.sessions.end(request.cookies.get(security.cookie_name(self.secure)))
        response = web.Response(status=303, headers={"Location": f"{PREFIX}/login"})
        security.clear_session_cookie(response, secure=self.secure)
        return response

    # -- executions list ------------------------------------------------------------------------

    def _list_query(self, query: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str], str | None]:
        """(read-model page arguments, the filters as typed, an error to show) of the list's query."""
        shown = {name: query.get(name, "").strip() for name in ("proposal_id", "status", "from", "to")}
        problems = []
        proposal_id = shown["proposal_id"] or None
        if proposal_id is not None and len(proposal_id) > 128:
            problems.append("the proposal id has at most 128 characters")
            proposal_id = None
        status = shown["status"] or None
        if status is not None and status not in STATES:
            problems.append(f"unknown status {status!r}")
            status = None
        bounds: dict[str, int | None] = {}
        for name in ("from", "to"):
            bounds[name] = None
            if shown[name]:
                try:
                    moment = datetime.fromisoformat(shown[name])
                    bounds[name] = micros(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
                except (ValueError, OverflowError):
                    problems.append(f"'{name}' is not a date and time (YYYY-MM-DDTHH:MM, UTC)")
        digest = filters_digest(proposal_id, status, bounds["from"], bounds["to"])
        after: Cursor | None = None
        if query.get("cursor"):
            try:
                after = decode_cursor(query["cursor"], digest)
            except InvalidCursor:
                problems.append("that page is no longer valid for these filters: back to the first page")
        arguments = {"limit": LIST_PAGE, "after": after, "proposal_id": proposal_id, "status": status,
                     "from_us": bounds["from"], "to_us": bounds["to"], "_digest": digest}
        return arguments, shown, "; ".join(problems) or None

    def _list_context(self, request: web.Request) -> dict[str, Any]:
        self.handlers._require_read_model()  # noqa: SLF001 - the API's own 503 while loading
        arguments, shown, error = self._list_query(request.query)
        digest = arguments.pop("_digest")
        items, following = self.read_model.page(**arguments)
        filters = {k: v for k, v in shown.items() if v}
        next_url = None
        if following is not None:
            next_url = f"{PREFIX}/executions?" + urlencode({**filters, "cursor": encode_cursor(following, digest)})
        return {"items": items, "filters": shown, "states": STATES, "error": error, "next_url": next_url,
                "first_url": f"{PREFIX}/executions?" + urlencode(filters), "paged": "cursor" in request.query,
                "fragment_url": f"{PREFIX}/executions/fragment?" + urlencode(request.query)}

    async def executions(self, request: web.Request) -> web.Response:
        await self.read_model.sync(self.config.read_sync_timeout_s)
        return self.render(request, "executions.html", **self._list_context(request))

    async def executions_fragment(self, request: web.Request) -> web.Response:
        context = self._list_context(request)
        return _json({"rows": self.fragment(request, "_rows.html", **context)})

    # -- one execution --------------------------------------------------------------------------

    async def _execution(self, execution_id: str, events_before: int | None, ticket_offset: int) -> dict[str, Any]:
        handlers = self.handlers
        model = self.read_model
        found = await handlers._read(execution_id, lambda: model.execution(execution_id, 0))  # noqa: SLF001
        head, raw_tickets, _ = found
        tickets = [orjson.loads(raw) for raw in raw_tickets]
        rows, more_before = self._rows_before(execution_id, events_before)
        return {"head": head.view, "tickets": tickets, "graph": layout(tickets), "rows": rows,
                "titles": _titles(tickets), "more_before": more_before, "ticket_offset": ticket_offset,
                "ticket_page": tickets[ticket_offset:ticket_offset + TICKETS_PAGE], "tickets_page_size": TICKETS_PAGE,
                "can_cancel": not head.view["is_complete"]}

    def _rows_before(self, execution_id: str, before: int | None) -> tuple[list[dict[str, Any]], bool]:
        """The lifecycle page of rows with seq < `before` (None: the newest), newest first, each
        with its cause; and whether older rows exist."""
        head = self.read_model.get(execution_id)
        newest = 0 if head is None else int(head.view["event_count"])
        end = newest + 1 if before is None else max(1, min(before, newest + 1))
        after = max(0, end - 1 - EVENTS_PAGE)
        found = self.read_model.events(execution_id, after, end - 1 - after) if end - 1 > after else ([], False)
        raw_rows = [] if found is None else found[0]
        rows = [orjson.loads(raw) for raw in raw_rows]
        rows = [row for row in rows if row["seq"] < end]
        self._attach_causes(execution_id, rows)
        rows.reverse()
        return rows, after > 0

    def _newer_rows(self, execution_id: str, after_seq: int) -> list[dict[str, Any]]:
        found = self.read_model.events(execution_id, after_seq, EVENTS_PAGE)
        rows = [] if found is None else [orjson.loads(raw) for raw in found[0]]
        self._attach_causes(execution_id, rows)
        rows.reverse()
        return rows

    def _attach_causes(self, execution_id: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        causes = self.read_model.causes(execution_id, rows[0]["seq"], rows[-1]["seq"])
        index = 0
        for row in rows:  # ascending: each row's cause is the last one starting at or before it
            while index + 1 < len(causes) and causes[index + 1][0] <= row["seq"]:
                index += 1
            row["cause"] = causes[index][1] if causes and causes[index][0] <= row["seq"] else None

    async def execution(self, request: web.Request) -> web.Response:
        execution_id = request.match_info["execution_id"]
        before = _int(request.query.get("before"))
        offset = _int(request.query.get("tickets")) or 0
        context = await self._execution(execution_id, before, offset)
        notice = CANCEL_NOTICES.get(request.query.get("cancel", ""))
        live_events = before is None
        return self.render(request, "execution.html", notice=notice, live_events=live_events,
                           stream_url=f"{PREFIX}/stream?" + urlencode({"execution_id": execution_id}),
                           fragment_url=f"{PREFIX}/executions/{execution_id}/fragment?" + urlencode({"tickets": offset}),
                           **context)

    async def execution_fragment(self, request: web.Request) -> web.Response:
        execution_id = request.match_info["execution_id"]
        after_seq = _int(request.query.get("after_seq")) or 0
        offset = _int(request.query.get("tickets")) or 0
        context = await self._execution(execution_id, None, offset)
        newer = self._newer_rows(execution_id, after_seq)
        return _json({
            "header": self.fragment(request, "_header.html", **context),
            "graph": self.fragment(request, "_graph.html", **context),
            "tickets": self.fragment(request, "_tickets.html", **context),
            "events": self.fragment(request, "_event_rows.html", rows=newer, titles=context["titles"]),
            "last_seq": max([after_seq, *(row["seq"] for row in newer)]),
        })

    # -- cancel ---------------------------------------------------------------------------------

    async def cancel_page(self, request: web.Request) -> web.Response:
        execution_id = request.match_info["execution_id"]
        self._require_write(request)
        context = await self._execution(execution_id, None, 0)
        return self.render(request, "cancel.html", **context)

    async def cancel(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        execution_id = request.match_info["execution_id"]
        self._require_write(request)
        form = await request.post()
        reason = str(form.get("reason") or "").strip()[:500] or None
        if form.get("confirm") != "yes":
            raise web.HTTPBadRequest(reason="Bad Request", text="Confirm the cancel on the confirmation page.")
        principal = request[SESSION].principal
        _, result = await self.handlers.submit_cancel(execution_id, actor_of(principal.name, CHANNEL), reason,
                                                      request[CORRELATION_ID], started)
        outcome = "pending" if result is None else {"CANCEL_ACCEPTED": "accepted"}.get(result["outcome"], "rejected")
        log.info("console cancel: %s", outcome, extra={"execution_id": execution_id, "principal": principal.name})
        raise web.HTTPSeeOther(f"{PREFIX}/executions/{execution_id}?cancel={outcome}")

    def _require_write(self, request: web.Request) -> None:
        if not request[SESSION].principal.allows(Scope.WRITE):
            raise web.HTTPForbidden(reason="Forbidden", text=f"Cancelling needs the scope {Scope.WRITE.value}.")

    # -- dead letters ---------------------------------------------------------------------------

    async def dead_letters_page(self, request: web.Request) -> web.Response:
        feed = self.dead_letters
        return self.render(request, "dead_letters.html", letters=[] if feed is None else feed.recent(),
                           topic=None if feed is None else feed.topic, capacity=self.config.console_dead_letters,
                           running=feed is not None and feed.healthy)

    # -- live updates ---------------------------------------------------------------------------

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: `change` with the ids of the executions that changed (only the one
        asked for, with ?execution_id=), `resync` when some were missed; a comment every 15 s."""
        execution_id = request.query.get("execution_id") or None
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"})
        try:
            async with self.hub.subscribe(execution_id) as subscription:
                security.set_security_headers(response, static=False, secure=self.secure)
                await response.prepare(request)
                await response.write(b"retry: 3000\n: connected\n\n")
                while not self.hub.closed:
                    try:
                        changed = await asyncio.wait_for(subscription.queue.get(), KEEP_ALIVE_S)
                    except TimeoutError:
                        await response.write(b": keep-alive\n\n")
                        continue
                    if self.hub.closed:
                        break
                    if changed is None:
                        await response.write(b"event: resync\ndata: {}\n\n")
                    else:
                        data = orjson.dumps({"executions": sorted(changed)})
                        await response.write(b"event: change\ndata: " + data + b"\n\n")
                return response
        except HubFull:
            return web.Response(status=503, text="too many live streams; reload later", headers={"Retry-After": "5"})
        except ConnectionResetError:  # the browser left (aiohttp's ClientConnectionResetError is one)
            return response

    async def close(self, _app: web.Application) -> None:
        self.hub.close()


PAGES = frozenset({"console.executions", "console.execution", "console.dead_letters", "console.cancel_page"})


def _json(body: Any) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def _int(text: str | None) -> int | None:
    if text is None or not text.isascii() or not text.isdigit() or len(text) > 12:
        return None
    return int(text)


def _titles(tickets: list[dict[str, Any]]) -> dict[str, str]:
    from gateway.console.graph import ticket_title

    return {t["ticket_id"]: ticket_title(t) for t in tickets}


def create_console(handlers: Handlers, *, dead_letters: DeadLetterFeed | None = None,
                   clock: Callable[[], float] = time.time) -> web.Application:
    """The console sub-application (mount it at PREFIX)."""
    console = Console(handlers, dead_letters, clock)
    app = web.Application(middlewares=[console.guard])
    app[CONSOLE] = console
    router = app.router
    router.add_get("/", console.root, name="console.root", allow_head=False)
    router.add_get("/login", console.login_page, name="console.login", allow_head=False)
    router.add_post("/login", console.login, name="console.login.submit")
    router.add_post("/logout", console.logout, name="console.logout")
    router.add_get("/executions", console.executions, name="console.executions", allow_head=False)
    router.add_get("/executions/fragment", console.executions_fragment, name="console.executions_fragment",
                   allow_head=False)
    router.add_get("/executions/{execution_id}", console.execution, name="console.execution", allow_head=False)
    router.add_get("/executions/{execution_id}/fragment", console.execution_fragment,
                   name="console.execution_fragment", allow_head=False)
    router.add_get("/executions/{execution_id}/cancel", console.cancel_page, name="console.cancel_page",
                   allow_head=False)
    router.add_post("/executions/{execution_id}/cancel", console.cancel, name="console.cancel")
    router.add_get("/dead-letters", console.dead_letters_page, name="console.dead_letters", allow_head=False)
    router.add_get("/stream", console.stream, name="console.stream", allow_head=False)
    router.add_static("/static", HERE / "static", name="console.static")
    app.on_shutdown.append(console.close)
    if dead_letters is not None:
        feed = dead_letters

        async def start_feed(_app: web.Application) -> None:
            feed.start(asyncio.get_running_loop())

        async def stop_feed(_app: web.Application) -> None:
            await asyncio.get_running_loop().run_in_executor(None, feed.close)

        app.on_startup.append(start_feed)
        app.on_cleanup.append(stop_feed)
    return app


__all__ = ["CONSOLE_ROUTE_PREFIX", "PREFIX", "Graph", "create_console"]
