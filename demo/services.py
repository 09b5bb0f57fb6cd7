"""Start the service's processes for the demo, and stop every one of them by its PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class ServiceProcess:
    name: str
    process: subprocess.Popen
    log_path: Path

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

    def start(self, name: str, module: str, *args: str) -> ServiceProcess:
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", module, *args], cwd=ROOT, env={**os.environ, **self.env},
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            )
        service = ServiceProcess(name, process, log_path)
        self.started.append(service)
        return service

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
