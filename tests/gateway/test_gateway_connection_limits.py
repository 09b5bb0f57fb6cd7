"""The gateway's connection limits against real sockets on loopback (the server `python -m
gateway` runs, a fake Kafka side): the connection cap, the header deadline for half-open and idle
connections, the body deadline, and unsigned or oversized webhook uploads refused before their
body is read. Bounded: at most 60 connections, a few seconds each."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import requests

from gateway.webhook import signature_header
from testkit.gateway import GIVE_UP_S, LiveGateway, all_closed_by_server, connect, read_until_closed
from testkit.gateway_fakes import AUTH, SECRET, FakeBackend, config, state_change


@pytest.fixture
def gateway() -> Iterator[LiveGateway]:
    backend = FakeBackend()
    backend.read_model.apply(state_change("exec_l1"))
    live = LiveGateway(config(max_connections=8, header_timeout_s=1.0, body_timeout_s=1.0), backend=backend)
    try:
        yield live
    finally:
        live.stop()


def metric(gateway: LiveGateway, sample: str) -> float:
    for line in requests.get(f"{gateway.url}/metrics", timeout=10).text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[1])
    return 0.0


def test_connections_beyond_the_cap_are_answered_503_and_closed(gateway: LiveGateway) -> None:
    held = [connect(gateway.port) for _ in range(8)]
    try:
        refused = connect(gateway.port)
        answer = read_until_closed(refused)
        assert answer.startswith(b"HTTP/1.1 503 ")
        assert b"Retry-After: 1" in answer and b"service-unavailable" in answer
        held[0].close()  # a slot frees: the next connection is served
        deadline = time.monotonic() + GIVE_UP_S
        while True:
            probe = connect(gateway.port)
            probe.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            if read_until_closed(probe).startswith(b"HTTP/1.1 200 ") or time.monotonic() > deadline:
                break
        assert time.monotonic() <= deadline, "no connection was served after one closed"
    finally:
        for sock in held:
            sock.close()
    assert metric(gateway, "gateway_connections_refused_total") >= 1


def test_half_open_connections_are_closed_after_the_header_timeout(gateway: LiveGateway) -> None:
    silent = [connect(gateway.port) for _ in range(3)]
    partial = [connect(gateway.port) for _ in range(3)]
    for sock in partial:
        sock.sendall(b"POST /rebalance/executions HTTP/1.1\r\nHost: t\r\n")  # never the blank line
    dribbling = connect(gateway.port)
    dribbling.sendall(b"GET /healthz HTTP/1.1\r\n")
    for _ in range(3):  # a byte now and then does not extend the deadline
        time.sleep(0.3)
        try:
            dribbling.sendall(b"X")
        except OSError:  # a stalled test thread (it shares the GIL with the gateway): already closed
            break
    received = all_closed_by_server([*silent, *partial, dribbling])
    for sock in (*silent, *partial):
        assert received[sock].startswith(b"HTTP/1.1 408 ")  # nothing was answered on it yet: say why
    assert metric(gateway, 'gateway_request_timeouts_total{phase="header"}') >= 7
    assert metric(gateway, "gateway_open_connections") == 1.0  # only the metrics scrape itself


def test_idle_keep_alive_connection_is_closed_after_the_header_timeout(gateway: LiveGateway) -> None:
    sock = connect(gateway.port)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    received = all_closed_by_server([sock])[sock]
    assert received.startswith(b"HTTP/1.1 200 ")
    assert b"408" not in received  # answered once: no second status line is written into the stream


def test_body_that_stops_arriving_is_408_and_the_connection_closed(gateway: LiveGateway) -> None:
    sock = connect(gateway.port)
    signature = signature_header(SECRET, b"whatever", int(time.time()))  # fresh and well formed
    sock.sendall(b"POST /rebalance/executions/exec_l1/events HTTP/1.1\r\nHost: t\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 500\r\n"
                 + f"X-Signature: {signature}\r\n\r\n".encode() + b'{"event_id":')
    answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"request-timeout" in answer
    assert metric(gateway, 'gateway_request_timeouts_total{phase="body"}') >= 1


def test_unsigned_webhook_upload_is_refused_before_any_of_its_body_is_sent(gateway: LiveGateway) -> None:
    sock = connect(gateway.port)
    sock.sendall(b"POST /rebalance/executions/exec_l1/events HTTP/1.1\r\nHost: t\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 1048576\r\n\r\n")
    sock.settimeout(GIVE_UP_S)
    head = sock.recv(65536)  # no body byte was sent: the answer cannot have waited for it
    assert head.startswith(b"HTTP/1.1 401 ")
    assert b"invalid-signature" in head or b"invalid-signature" in sock.recv(65536)
    sock.close()


def test_webhook_body_declared_larger_than_the_limit_is_413_before_it_is_read(gateway: LiveGateway) -> None:
    sock = connect(gateway.port)
    signature = signature_header(SECRET, b"x", int(time.time()))
    sock.sendall(b"POST /rebalance/executions/exec_l1/events HTTP/1.1\r\nHost: t\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 100000\r\n"
                 + f"X-Signature: {signature}\r\n\r\n".encode())
    sock.settimeout(GIVE_UP_S)
    assert sock.recv(65536).startswith(b"HTTP/1.1 413 ")
    sock.close()


def test_webhook_body_streamed_past_the_limit_is_413(gateway: LiveGateway) -> None:
    body = json.dumps({"padding": "x" * 20_000}).encode()  # chunked: no Content-Length to refuse up front

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 4096):
            yield body[start:start + 4096]

    response = requests.post(f"{gateway.url}/rebalance/executions/exec_l1/events", data=chunks(), timeout=GIVE_UP_S,
                             headers={"Content-Type": "application/json",
                                      "X-Signature": signature_header(SECRET, body, int(time.time()))})
    assert response.status_code == 413
    assert response.json()["type"].endswith("/payload-too-large")


def test_ordinary_requests_pass_the_guard(gateway: LiveGateway) -> None:
    with requests.Session() as session:  # one kept-alive connection, several requests
        statuses = [session.get(f"{gateway.url}/rebalance/executions/exec_l1", headers=AUTH, timeout=10).status_code
                    for _ in range(3)]
    assert statuses == [200, 200, 200]
