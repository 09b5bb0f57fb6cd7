"""Serving the gateway on a socket, with the connection limits aiohttp does not have.

aiohttp (3.14) caps header sizes (`max_line_size`, `max_field_size`, `max_headers`) and closes
connections idle for `keepalive_timeout`, but has no cap on open connections and no deadline for
a request's headers that holds on every version we allow (a client sending a byte now and then
kept a connection, and its buffers, for as long as it liked). `ConnectionGuard` adds both, as a
thin asyncio protocol wrapped around aiohttp's own (`GuardedSite`):

- **Connection cap.** A connection beyond `max_connections` is answered `503` (problem details,
  `Retry-After: 1`) and closed before aiohttp sees it.
- **Header deadline.** From the moment a connection opens, and again after each request is
  answered, the next request's headers must arrive within `header_timeout_s`; otherwise the
  connection is closed (with a `408` when nothing was answered on it yet). The edge middleware
  tells the guard when a request's headers are in (`request_started`) and when it is answered
  (`request_finished`). So half-open and idle keep-alive connections both go after the timeout.
- The body's deadline is the handlers' (`Handlers.read_body`, `GATEWAY_BODY_TIMEOUT_S`), and
  after an answer whose body was not read aiohttp discards what still arrives for at most
  `LINGERING_S`, then closes.

`serve()` runs the app until SIGTERM or SIGINT with a graceful shutdown, as `web.run_app` would.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from gateway.config import GatewayConfig
from gateway.metrics import GatewayMetrics
from gateway.problems import PROBLEM_CONTENT_TYPE, ApiProblem, Problems

log = logging.getLogger(__name__)

LINGERING_S = 2.0  # after answering a request whose body was not read (aiohttp's default is 10 s)
MAX_HEADERS = 48  # aiohttp's default is 128 headers of 8 KiB each: 1 MiB of headers per connection
SHUTDOWN_TIMEOUT_S = 10.0


def _canned(kind: Any, detail: str, extra_headers: str = "") -> bytes:
    body = orjson.dumps(ApiProblem(kind, detail).body(instance=None, correlation_id=None))
    head = (f"HTTP/1.1 {kind.status} {kind.title}\r\nContent-Type: {PROBLEM_CONTENT_TYPE}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra_headers}\r\n")
    return head.encode("ascii") + body


_TOO_MANY = _canned(Problems.SERVICE_UNAVAILABLE, "too many open connections; retry shortly", "Retry-After: 1\r\n")
_HEADER_TIMEOUT = _canned(Problems.REQUEST_TIMEOUT, "the request's headers did not arrive in time")


class _GuardedConnection(asyncio.Protocol):
    """aiohttp's protocol for one connection, behind the cap and the header deadline."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner: asyncio.Protocol | None = inner
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._answered = 0

    # -- asyncio.Protocol, forwarded ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if not self._guard._admit(self, transport):
            self._inner = None
            transport.write(_TOO_MANY)
            transport.close()
            return
        self.arm()
        assert self._inner is not None
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm()
        inner, self._inner = self._inner, None
        if inner is not None:
            self._guard._release(self, self._transport)
            inner.connection_lost(exc)

    # -- the header deadline ------------------------------------------------------------------------

    def arm(self) -> None:
        self.disarm()
        self._timer = asyncio.get_running_loop().call_later(self._guard.header_timeout_s, self._expired)

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def answered(self) -> None:
        self._answered += 1
        self.arm()

    def _expired(self) -> None:
        self._timer = None
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        self._guard.metrics.timeouts.labels("header").inc()
        if self._answered == 0:  # nothing else was written on it: say why
            transport.write(_HEADER_TIMEOUT)
            transport.close()
        else:
            transport.abort()


class ConnectionGuard:
    def __init__(self, max_connections: int, header_timeout_s: float, metrics: GatewayMetrics) -> None:
        self.max_connections = max_connections
        self.header_timeout_s = header_timeout_s
        self.metrics = metrics
        self._open: dict[asyncio.BaseTransport, _GuardedConnection] = {}

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def protocol_factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        return lambda: _GuardedConnection(self, inner())

    def _admit(self, connection: _GuardedConnection, transport: asyncio.BaseTransport) -> bool:
        if len(self._open) >= self.max_connections:
            self.metrics.connections_refused.inc()
            return False
        self._open[transport] = connection
        self.metrics.open_connections.set(len(self._open))
        return True

    def _release(self, connection: _GuardedConnection, transport: asyncio.BaseTransport | None) -> None:
        if transport is not None and self._open.get(transport) is connection:
            del self._open[transport]
            self.metrics.open_connections.set(len(self._open))

    # -- told by the edge middleware ------------------------------------------------------------------

    def request_started(self, transport: asyncio.BaseTransport | None) -> None:
        connection = self._open.get(transport) if transport is not None else None
        if connection is not None:
            connection.disarm()

    def request_finished(self, transport: asyncio.BaseTransport | None) -> None:
        connection = self._open.get(transport) if transport is not None else None
        if connection is not None:
            connection.answered()


class GuardedSite(web.BaseSite):
    """A TCP site whose connections pass through the app's `ConnectionGuard`."""

    def __init__(self, runner: web.BaseRunner, guard: ConnectionGuard, host: str, port: int, *,
                 backlog: int = 512) -> None:
        super().__init__(runner, backlog=backlog)
        self._guard = guard
        self._host = host
        self._port = port
        self.bound_port: int | None = None

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self.bound_port or self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self._guard.protocol_factory(server), self._host, self._port, backlog=self._backlog, reuse_address=True)
        self.bound_port = int(self._server.sockets[0].getsockname()[1])


def runner_options(config: GatewayConfig) -> dict[str, Any]:
    """aiohttp's own limits, matched to the configuration."""
    return {
        "access_log": None,
        "keepalive_timeout": config.header_timeout_s,  # idle keep-alive connections go with the header deadline
        "lingering_time": LINGERING_S,
        "max_headers": MAX_HEADERS,
        "shutdown_timeout": SHUTDOWN_TIMEOUT_S,
    }


async def start(app: web.Application, config: GatewayConfig, guard: ConnectionGuard,
                host: str | None = None, port: int | None = None) -> tuple[web.AppRunner, GuardedSite]:
    runner = web.AppRunner(app, **runner_options(config))
    await runner.setup()
    site = GuardedSite(runner, guard, config.host if host is None else host, config.port if port is None else port)
    await site.start()
    return runner, site


async def serve(app: web.Application, config: GatewayConfig, guard: ConnectionGuard) -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully (in-flight requests finish)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runner, site = await start(app, config, guard)
    log.info("serving on %s", site.name)
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        await runner.cleanup()
