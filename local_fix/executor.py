"""QuickFIX/J's example Executor as a FIX 4.4 acceptor on a free loopback port, run with `java -cp`.

It is a counterparty written and maintained outside this project: it answers a market order
(and a marketable limit order) with an ExecutionReport New and then a full fill at
`DefaultMarketPrice`, refuses an order type outside `ValidOrderTypes` with a session-level Reject
(35=3), and answers any other application message (a cancel, a status request) with a
BusinessMessageReject (35=j).

It stops when its standard input reaches end of file, so it is started with a pipe that this
object keeps open; `stop()` closes the pipe, then ends the JVM by its PID (SIGTERM, SIGKILL). The
JVM also gets SIGTERM if the Python process that started it dies first. Its settings bind
127.0.0.1 only (`SocketAcceptAddress`; the default would be every interface).
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from local_fix.assemble import MAIN_CLASS, ExecutorDistribution, assemble
from local_kafka.broker import OWNER_MARKER, die_with_parent, free_loopback_port, temp_prefix


class ExecutorStartError(RuntimeError):
    """The Executor exited or did not start listening in time."""


@dataclass(frozen=True, slots=True)
class ExecutorSettings:
    """What the Executor is told; `session_config` renders its QuickFIX settings file."""

    sender_comp_id: str = "EXEC"  # the Executor's own CompID
    target_comp_id: str = "ADAPTER"  # the FIX adapter's SenderCompID
    heartbeat_s: int = 30
    valid_order_types: str = "1,2"  # FIX OrdType values it accepts: 1 market, 2 limit
    default_market_price: Decimal = Decimal("12.30")


def session_config(settings: ExecutorSettings, *, port: int, store_dir: Path) -> str:
    return "\n".join([
        "[default]",
        f"FileStorePath={store_dir}",
        "ConnectionType=acceptor",
        "StartTime=00:00:00",
        "EndTime=00:00:00",
        f"HeartBtInt={settings.heartbeat_s}",
        f"ValidOrderTypes={settings.valid_order_types}",
        f"SenderCompID={settings.sender_comp_id}",
        f"TargetCompID={settings.target_comp_id}",
        "UseDataDictionary=Y",
        f"DefaultMarketPrice={settings.default_market_price}",
        "SocketAcceptAddress=127.0.0.1",
        "",
        "[session]",
        "BeginString=FIX.4.4",
        f"SocketAcceptPort={port}",
        "",
    ])


class LocalFixExecutor:
    """Start with `start()` (or use as a context manager); always `stop()`."""

    def __init__(self, settings: ExecutorSettings | None = None, distribution: ExecutorDistribution | None = None,
                 *, ready_timeout_s: float = 60.0) -> None:
        self.settings = settings or ExecutorSettings()
        self._distribution = distribution
        self._ready_timeout_s = ready_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self.work_dir: Path | None = None
        self.port: int | None = None

    def start(self) -> LocalFixExecutor:
        if self._process is not None:
            raise RuntimeError("executor already started")
        distribution = self._distribution or assemble()
        self._distribution = distribution
        self.work_dir = Path(tempfile.mkdtemp(prefix=temp_prefix() + "fix-executor-"))
        atexit.register(self.stop)
        try:
            self._launch(distribution)
            self._wait_until_listening()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout_s: float = 15.0) -> None:
        """Close its stdin (its own way to quit), then end the JVM by PID; remove the temp directory."""
        process, self._process = self._process, None
        if process is not None:
            if process.stdin is not None:
                try:
                    process.stdin.close()
                except OSError:
                    pass
            if process.poll() is None:
                try:
                    process.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    process.send_signal(signal.SIGTERM)
                    try:
                        process.wait(timeout=timeout_s)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait(timeout=timeout_s)
        if self.work_dir is not None and self.work_dir.exists():
            shutil.rmtree(self.work_dir, ignore_errors=True)
        atexit.unregister(self.stop)

    def __enter__(self) -> LocalFixExecutor:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def output_path(self) -> Path:
        assert self.work_dir is not None
        return self.work_dir / "executor.out"

    @property
    def quickfixj_version(self) -> str:
        assert self._distribution is not None
        return self._distribution.quickfixj_version

    def output(self) -> str:
        try:
            return self.output_path.read_text(errors="replace")
        except (FileNotFoundError, AssertionError):
            return ""

    def _launch(self, distribution: ExecutorDistribution) -> None:
        assert self.work_dir is not None
        self.port = free_loopback_port()
        config_path = self.work_dir / "executor.cfg"
        config_path.write_text(session_config(self.settings, port=self.port, store_dir=self.work_dir / "store"))
        java = shutil.which("java")
        if java is None:
            raise ExecutorStartError("java is not on PATH (Java 17 or newer is required)")
        command = [java, OWNER_MARKER, f"-Dlocal_kafka.started_by={os.getpid()}", "-Xmx256m",
                   "-Djava.awt.headless=true", "-cp", distribution.classpath, MAIN_CLASS, str(config_path)]
        with open(self.output_path, "wb") as output:
            self._process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=die_with_parent,
            )

    def _wait_until_listening(self) -> None:
        assert self._process is not None
        ready = re.compile(rf"Listening for connections at /127\.0\.0\.1:{self.port}\b")
        deadline = time.monotonic() + self._ready_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ExecutorStartError(f"executor exited with code {self._process.returncode}\n{self.output()[-4000:]}")
            if ready.search(self.output()):
                return
            time.sleep(0.1)
        raise ExecutorStartError(f"executor not listening after {self._ready_timeout_s}s\n{self.output()[-4000:]}")
