"""Run the FIX adapter as a process of its own, and read its FIX traffic back (demo, tests).

`start_adapter` starts `python -m fix_adapter` with a counterparty (e.g. a `LocalFixExecutor`),
on topics given by environment variables as every service of the project takes them; the handle
stops it by PID (SIGTERM, or SIGKILL for crash tests). `traffic_summary` turns its /metrics into
the lines the demo prints beside the timeline.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, slots=True)
class CounterpartyAddress:
    name: str
    host: str
    port: int
    sender_comp_id: str = "ADAPTER"
    target_comp_id: str = "EXEC"
    heartbeat_s: int = 30

    def flag(self) -> str:
        return (f"name={self.name},host={self.host},port={self.port},sender={self.sender_comp_id},"
                f"target={self.target_comp_id},heartbeat={self.heartbeat_s}")


@dataclass
class AdapterProcess:
    process: subprocess.Popen[bytes]
    log_path: Path
    http_port: int

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the crash the exactly-once design is for."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self, timeout_s: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def metrics_text(self, timeout_s: float = 5) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=timeout_s) as response:
            text: str = response.read().decode()
            return text

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/readyz", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"fix adapter exited with {self.process.returncode}:\n{self.log_tail()}")
            if self.ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"fix adapter not logged on after {timeout_s}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def start_adapter(*, bootstrap: str, counterparties: list[CounterpartyAddress], adapter_id: str, http_port: int,
                  log_path: Path, topic_env: Mapping[str, str], status_after_s: float = 60,
                  extra_args: tuple[str, ...] = ()) -> AdapterProcess:
    """`python -m fix_adapter` in its own process; `topic_env` is `TOPIC_<KIND>` variables."""
    env = {**os.environ, **topic_env, "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    args = [sys.executable, "-m", "fix_adapter", "--adapter-id", adapter_id, "--http-port", str(http_port),
            "--status-after-s", str(status_after_s), *extra_args]
    for counterparty in counterparties:
        args += ["--counterparty", counterparty.flag()]
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log_file,
                                   stderr=subprocess.STDOUT)
    return AdapterProcess(process, log_path, http_port)


def metric_values(metrics_text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples by name (counters by their `_total` name) of a /metrics text."""
    out: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            out[sample.name].append((dict(sample.labels), float(sample.value)))
    return out


def traffic_summary(metrics_text: str) -> list[str]:
    """What went over each FIX session: messages in and out by type, resends, reconciliations."""
    values = metric_values(metrics_text)
    lines: list[str] = []
    by_session: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for labels, value in sorted(values.get("fix_messages_total", []), key=lambda item: sorted(item[0].items())):
        if value:
            by_session[labels["counterparty"]][labels["direction"]].append(f"{labels['msg_type']} {int(value)}")
    states = {labels["counterparty"]: int(value) for labels, value in values.get("fix_session_state", [])}
    state_names = {0: "disconnected", 1: "logon sent", 2: "active", 3: "logout sent"}
    for name, directions in by_session.items():
        lines.append(f"FIX session {name} ({state_names.get(states.get(name, 0), '?')}):")
        lines.append(f"  out: {', '.join(directions.get('out', [])) or '-'}")
        lines.append(f"  in:  {', '.join(directions.get('in', [])) or '-'}")

    def total(name: str) -> int:
        return int(sum(value for _, value in values.get(name, [])))

    lines.append(f"  resend requests: {total('fix_resend_requests_total')}, duplicate reports dropped: "
                 f"{total('fix_duplicate_reports_total')}, orders without report: {total('fix_orders_without_report')}")
    lines.append(f"  status requests (reconciliation): {total('fix_reconciliations_total')}, events they inferred: "
                 f"{total('fix_reconciled_events_total')}")
    return lines
