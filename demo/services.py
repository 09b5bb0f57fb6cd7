"""Start the service's processes for the demo, and stop every one of them by its PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from local_kafka.broker import die_with_parent

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class ServiceProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    module: str = ""
    args: tuple[str, ...] = ()

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout_s: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout_s)
        return self.process.returncode

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


@dataclass
class Services:
    """The processes the demo started, stopped in reverse order."""

    log_dir: Path
    env: dict[str, str]
    started: list[ServiceProcess] = field(default_factory=list)
    _last: dict[str, ServiceProcess] = field(default_factory=dict)  # by name, also after a stop

    def __post_init__(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, module: str, *args: str) -> ServiceProcess:
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "ab") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", module, *args], cwd=ROOT, env={**os.environ, **self.env},
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,  # never outlives whoever started it, even if that one is SIGKILLed
            )
        service = ServiceProcess(name, process, log_path, module, args)
        self.started.append(service)
        self._last[name] = service
        return service

    def get(self, name: str) -> ServiceProcess:
        return next(s for s in reversed(self.started) if s.name == name)

    def stop(self, name: str) -> int:
        """SIGTERM one service (by its PID) and forget it; its exit code."""
        service = self.get(name)
        code = service.stop()
        self.started.remove(service)
        return code

    def kill(self, name: str) -> int:
        """SIGKILL one service by its PID, as a crash would, and forget it; the PID killed."""
        service = self.get(name)
        service.process.kill()
        service.process.wait(30)
        self.started.remove(service)
        return service.process.pid

    def restart(self, name: str, *extra_args: str) -> ServiceProcess:
        """Start a service again with the arguments it was last started with (plus `extra_args`)."""
        previous = self._last[name]
        if previous in self.started:
            self.stop(name)
        return self.start(name, previous.module, *previous.args, *extra_args)

    def check_alive(self) -> None:
        for service in self.started:
            if not service.alive():
                raise RuntimeError(f"{service.name} exited with {service.process.returncode}:\n{service.log_tail()}")

    def stop_all(self) -> list[tuple[str, int]]:
        codes = [(service.name, service.stop()) for service in reversed(self.started)]
        deadline = time.monotonic() + 5
        while any(service.alive() for service in self.started) and time.monotonic() < deadline:
            time.sleep(0.05)
        return codes
