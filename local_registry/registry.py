"""Apicurio Registry (in-memory storage) run with `java -jar` on a free loopback port.

Like `local_kafka.broker`: a temporary directory for its output, readiness checked over HTTP
(`GET /apis/ccompat/v7/subjects` answers 200), and a stop by PID that never leaves a JVM behind
(SIGTERM, then SIGKILL; the JVM also gets SIGTERM if the Python process that started it dies).
Clients use the Confluent-compatible API at `url` (`http://127.0.0.1:<port>/apis/ccompat/v7`).
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from local_kafka.broker import OWNER_MARKER, die_with_parent, free_loopback_port, temp_prefix
from local_registry.assemble import RegistryDistribution, assemble

CCOMPAT_PATH = "/apis/ccompat/v7"


class RegistryStartError(RuntimeError):
    """The registry process exited or did not become ready in time."""


class LocalSchemaRegistry:
    """Start with `start()` (or use as a context manager); always `stop()`."""

    def __init__(self, distribution: RegistryDistribution | None = None, *, heap: str = "384m",
                 ready_timeout_s: float = 90.0) -> None:
        self._distribution = distribution
        self._heap = heap
        self._ready_timeout_s = ready_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self.work_dir: Path | None = None
        self.port: int | None = None

    def start(self) -> LocalSchemaRegistry:
        if self._process is not None:
            raise RuntimeError("registry already started")
        distribution = self._distribution or assemble()
        self._distribution = distribution
        # The local broker's markers (as local_fix does): bin/test finds whatever a run left behind by them.
        self.work_dir = Path(tempfile.mkdtemp(prefix=temp_prefix() + "registry-"))
        atexit.register(self.stop)
        try:
            self._launch(distribution)
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the JVM by its PID (SIGTERM, then SIGKILL) and remove the temp directory."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout_s)
        if self.work_dir is not None and self.work_dir.exists():
            shutil.rmtree(self.work_dir, ignore_errors=True)
        atexit.unregister(self.stop)

    def __enter__(self) -> LocalSchemaRegistry:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The Confluent-compatible API, as SCHEMA_REGISTRY_URL."""
        if self.port is None:
            raise RuntimeError("registry not started")
        return f"http://127.0.0.1:{self.port}{CCOMPAT_PATH}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def version(self) -> str:
        assert self._distribution is not None
        return self._distribution.version

    def log_tail(self, max_chars: int = 4000) -> str:
        try:
            return self._output_path.read_text(errors="replace")[-max_chars:]
        except (FileNotFoundError, AssertionError):
            return ""

    @property
    def _output_path(self) -> Path:
        assert self.work_dir is not None
        return self.work_dir / "registry.out"

    def _launch(self, distribution: RegistryDistribution) -> None:
        assert self.work_dir is not None
        java = shutil.which("java")
        if java is None:
            raise RegistryStartError("java is not on PATH (Java 17 or newer is required)")
        self.port = free_loopback_port()
        tmp = self.work_dir / "tmp"
        tmp.mkdir()
        command = [
            java, OWNER_MARKER, f"-Dlocal_kafka.started_by={os.getpid()}",
            f"-Xmx{self._heap}", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
            f"-Djava.io.tmpdir={tmp}", f"-Dvertx.cacheDirBase={tmp / 'vertx'}",
            "-Dquarkus.http.host=127.0.0.1", f"-Dquarkus.http.port={self.port}",
            "-jar", str(distribution.runner_jar),
        ]
        with open(self._output_path, "wb") as output:
            self._process = subprocess.Popen(
                command, cwd=self.work_dir, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=die_with_parent,
            )

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self._ready_timeout_s
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RegistryStartError(f"registry exited with code {self._process.returncode}\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/subjects", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError) as error:
                last_error = error
            time.sleep(0.2)
        raise RegistryStartError(f"registry not ready after {self._ready_timeout_s}s ({last_error})\n{self.log_tail()}")
