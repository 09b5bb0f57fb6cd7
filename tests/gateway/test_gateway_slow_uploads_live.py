"""`python -m gateway` under attack without credentials (issue 14, "Why" 8), measured from /proc:
400 slow unsigned webhook uploads and 100 half-open connections against a real gateway process
on loopback. Bounded: 500 connections, about 10 seconds; everything stops by itself."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import pytest
import requests

from local_kafka.broker import free_loopback_port
from testkit.gateway import GIVE_UP_S, Stack, all_closed_by_server, connect
from testkit.processor import ROOT, wait_until
from wire.topics import TopicNames

pytestmark = pytest.mark.integration

UPLOADS = 400
HALF_OPEN = 100
DRIBBLE_ROUNDS = 30  # every 100 ms: 16 KiB more to each upload still open, up to ~3 s
CHUNK = b"x" * 16384
RSS_BUDGET_KB = 100 * 1024


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


class PeakRss:
    """Samples a process's RSS every 20 ms in a thread until stopped."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_kb = pid, rss_kb(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_kb = max(self.peak_kb, rss_kb(self.pid))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(5)
        return self.peak_kb


@pytest.fixture
def gateway_process(stack: Stack, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_loopback_port()
    harness = stack.harness
    env = {
        **os.environ, "KAFKA_BOOTSTRAP_SERVERS": harness.bootstrap, "PROCESSOR_APPLICATION_ID": harness.application_id,
        "GATEWAY_PORT": str(port), "GATEWAY_API_TOKENS": "slow-token-" + os.urandom(8).hex(),
        "GATEWAY_WEBHOOK_SECRETS": "slow-secret-" + os.urandom(8).hex(), "GATEWAY_INSTANCE_ID": "slow-1",
        "GATEWAY_HEADER_TIMEOUT_S": "2", "GATEWAY_BODY_TIMEOUT_S": "2", "GATEWAY_LOG_LEVEL": "WARNING",
        **{f"TOPIC_{f.name.upper()}": getattr(harness.topics, f.name) for f in fields(TopicNames)},
    }
    with open(tmp_path / "gateway.log", "wb") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "gateway"], cwd=ROOT, env=env, stdout=log_file,
                                   stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _status(f"{base}/readyz") == 200, 60, interval_s=0.1, what="gateway readyz")
        yield process, base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _status(url: str) -> int:
    try:
        return requests.get(url, timeout=5).status_code
    except requests.RequestException:
        return 0


def slow_uploads(port: int, count: int) -> tuple[list[socket.socket], int]:
    """Open `count` unsigned 1 MiB webhook uploads and dribble their bodies; the sockets and how
    many bytes of body the gateway took before closing them."""
    uploads = [connect(port) for _ in range(count)]
    for index, sock in enumerate(uploads):
        sock.sendall(f"POST /rebalance/executions/exec_slow_{index}/events HTTP/1.1\r\nHost: t\r\n"
                     "Content-Type: application/json\r\nContent-Length: 1048576\r\n\r\n".encode())
        sock.setblocking(False)
    open_uploads, sent = set(uploads), 0
    for _ in range(DRIBBLE_ROUNDS):
        for sock in list(open_uploads):
            try:
                sent += sock.send(CHUNK)
            except BlockingIOError:
                pass
            except OSError:  # the gateway closed it
                open_uploads.discard(sock)
        if not open_uploads:
            break
        time.sleep(0.1)
    return uploads, sent


def test_gateway_rss_stays_flat_under_slow_unsigned_uploads_and_half_open_connections_close(
        gateway_process: tuple[subprocess.Popen[bytes], str]) -> None:
    process, base = gateway_process
    port = int(base.rsplit(":", 1)[1])
    for _ in range(20):  # warm up: the first requests allocate what every request reuses
        requests.get(f"{base}/healthz", timeout=5)
    baseline_kb = rss_kb(process.pid)
    sampler = PeakRss(process.pid)
    half_open = [connect(port) for _ in range(HALF_OPEN)]
    for sock in half_open[: HALF_OPEN // 2]:
        sock.sendall(b"POST /rebalance/executions HTTP/1.1\r\nHost: t\r\nContent-Type: appl")  # never finished
    started = time.monotonic()
    uploads, sent = slow_uploads(port, UPLOADS)
    received = all_closed_by_server(uploads + half_open)
    closed_after_s = time.monotonic() - started
    peak_kb = sampler.stop()
    for sock in uploads + half_open:
        sock.close()
    after_kb = rss_kb(process.pid)
    print(f"\ngateway RSS: baseline {baseline_kb / 1024:.1f} MB, peak {peak_kb / 1024:.1f} MB "
          f"(+{(peak_kb - baseline_kb) / 1024:.1f} MB), after {after_kb / 1024:.1f} MB; {UPLOADS} uploads offered "
          f"{sent / 2**20:.1f} MiB of body; all {UPLOADS + HALF_OPEN} connections closed by the gateway after "
          f"{closed_after_s:.1f}s")
    assert peak_kb - baseline_kb < RSS_BUDGET_KB
    assert all(received[sock].startswith(b"HTTP/1.1 401 ") for sock in uploads)  # refused on the headers
    assert all(received[sock].startswith(b"HTTP/1.1 408 ") for sock in half_open)
    assert closed_after_s < GIVE_UP_S
    assert _status(f"{base}/healthz") == 200  # and it still serves
