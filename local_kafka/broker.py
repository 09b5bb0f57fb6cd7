"""A single-node Apache Kafka broker (KRaft, combined broker+controller) run with `java -cp`.

One class does it for tests, the demo and developers: free loopback ports, a temporary
directory for data and logs, readiness checked with the AdminClient, and a stop by PID
that never leaves a JVM behind (SIGTERM, then SIGKILL; the JVM also gets SIGTERM if the
Python process that started it dies first).

Given a `data_dir`, the broker is restartable: its storage is formatted only when the
directory is new (the cluster id stays in `meta.properties`), its ports are remembered in
`local-kafka.json` there, and `stop()` keeps the directory, so a later `start()` (this object
or another one on the same directory) comes back on the same port with its topics, committed
records and consumer offsets.
"""

from __future__ import annotations

import atexit
import base64
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient

from local_kafka.assemble import LOG4J_CONFIG_PATH, BrokerDistribution, assemble

# Markers on the JVM's command line and the temp dir's name, so that a runner can find a broker
# that a process it started (and no other) left behind: both name the starting process's PID.
OWNER_MARKER = "-Dlocal_kafka.owner=execution-integration"


def temp_prefix() -> str:
    return f"local-kafka-{os.getpid()}-"

_PR_SET_PDEATHSIG = 1
# In a broker's directory: the ports it was started on, so a restart keeps its address.
STATE_FILE = "local-kafka.json"


class BrokerStartError(RuntimeError):
    """The broker process exited or did not become ready in time."""


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def random_cluster_id() -> str:
    """Kafka's Uuid text form: URL-safe base64 of 16 random bytes without padding."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka avoids ids that look like CLI flags too.
            return text


def server_properties(*, data_dir: Path, broker_port: int, controller_port: int) -> dict[str, str]:
    """Broker configuration for one node that supports transactions and consumer groups."""
    return {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{broker_port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{broker_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        # The code defaults (3 replicas, min ISR 2) cannot be met by one node.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # Tests join groups constantly; the default 3 s delay would dominate their run time.
        "group.initial.rebalance.delay.ms": "0",
        # The default reserves 128 MiB of heap for compaction; Kafka's own test kit uses 2 MiB.
        "log.cleaner.dedupe.buffer.size": "2097152",
        # The service creates its topics with the configs they need; typos should fail loudly.
        "auto.create.topics.enable": "false",
    }


def die_with_parent() -> None:
    """Runs in the child before exec: the JVM gets SIGTERM if its Python parent dies."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # Not Linux: stop() and atexit still end the broker.


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) is not alive for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class LocalKafkaBroker:
    """Start with `start()` (or use as a context manager); always `stop()`."""

    def __init__(
        self,
        distribution: BrokerDistribution | None = None,
        *,
        heap: str = "768m",
        ready_timeout_s: float = 90.0,
        extra_properties: dict[str, str] | None = None,
        data_dir: Path | str | None = None,
        port: int | None = None,
    ) -> None:
        """`data_dir`: keep data there across stops (else a temporary directory, removed on
        stop). `port`: the broker's port (else the one the directory remembers, else a free one)."""
        self._distribution = distribution
        self._heap = heap
        self._ready_timeout_s = ready_timeout_s
        self._extra_properties = dict(extra_properties or {})
        self._process: subprocess.Popen[bytes] | None = None
        self._keep_dir = data_dir is not None
        self.work_dir: Path | None = Path(data_dir).resolve() if data_dir is not None else None
        self._requested_port = port
        self.broker_port: int | None = None
        self.controller_port: int | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> LocalKafkaBroker:
        """Start the broker and wait until it answers; again after `stop()` on a kept directory."""
        if self._process is not None:
            raise RuntimeError("broker already started")
        distribution = self._distribution or assemble()
        self._distribution = distribution
        if self._keep_dir:
            assert self.work_dir is not None
            self.work_dir.mkdir(parents=True, exist_ok=True)
        else:
            self.work_dir = Path(tempfile.mkdtemp(prefix=temp_prefix()))
        atexit.register(self.stop)
        try:
            self._launch(distribution)
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the JVM by its PID (SIGTERM, then SIGKILL); remove the directory unless it was given."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout_s)
        if not self._keep_dir and self.work_dir is not None and self.work_dir.exists():
            shutil.rmtree(self.work_dir, ignore_errors=True)
        atexit.unregister(self.stop)

    def kill(self) -> None:
        """SIGKILL the JVM (a crash, for tests); a kept directory stays for the next start."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=30)
        self.stop()

    def __enter__(self) -> LocalKafkaBroker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def cluster_id(self) -> str | None:
        """The KRaft cluster id formatted into the data directory (None before the first start)."""
        if self.work_dir is None:
            return None
        try:
            text = (self.work_dir / "data" / "meta.properties").read_text()
        except FileNotFoundError:
            return None
        match = re.search(r"^cluster\.id=(\S+)$", text, re.MULTILINE)
        return match.group(1) if match else None

    # -- facts about the running broker -------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        if self.broker_port is None:
            raise RuntimeError("broker not started")
        return f"127.0.0.1:{self.broker_port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def log_path(self) -> Path:
        assert self.work_dir is not None
        return self.work_dir / "logs" / "server.log"

    @property
    def kafka_version(self) -> str:
        """The version the running broker reports in its log (falls back to the pinned one)."""
        try:
            match = re.search(r"Kafka version: (\S+)", self.log_path.read_text(errors="replace"))
        except FileNotFoundError:
            match = None
        if match:
            return match.group(1)
        assert self._distribution is not None
        return self._distribution.kafka_version

    def log_tail(self, max_chars: int = 4000) -> str:
        chunks = []
        for path in (self.log_path, self._jvm_output_path):
            try:
                chunks.append(f"--- {path.name}\n" + path.read_text(errors="replace")[-max_chars:])
            except (FileNotFoundError, AssertionError):
                pass
        return "\n".join(chunks)

    # -- internals -------------------------------------------------------------------------

    @property
    def _jvm_output_path(self) -> Path:
        assert self.work_dir is not None
        return self.work_dir / "jvm.out"

    def _choose_ports(self) -> tuple[int, int]:
        """The requested port, else the directory's remembered ports, else free ones; remembered."""
        assert self.work_dir is not None
        state_path = self.work_dir / STATE_FILE
        remembered: dict[str, int] = {}
        if state_path.exists():
            try:
                remembered = {k: int(v) for k, v in json.loads(state_path.read_text()).items()}
            except (ValueError, TypeError, AttributeError) as error:
                raise BrokerStartError(f"{state_path} is not a broker state file: {error}") from None
        broker_port = self._requested_port or remembered.get("broker_port") or free_loopback_port()
        controller_port = remembered.get("controller_port") or free_loopback_port()
        while controller_port == broker_port:
            controller_port = free_loopback_port()
        for port, what in ((broker_port, "broker"), (controller_port, "controller")):
            if not port_is_free(port):
                raise BrokerStartError(f"the {what} port 127.0.0.1:{port} is in use (another broker running?)")
        state_path.write_text(json.dumps({"broker_port": broker_port, "controller_port": controller_port}) + "\n")
        return broker_port, controller_port

    def _launch(self, distribution: BrokerDistribution) -> None:
        assert self.work_dir is not None
        (self.work_dir / "logs").mkdir(exist_ok=True)
        self.broker_port, self.controller_port = self._choose_ports()
        properties = server_properties(
            data_dir=self.work_dir / "data",
            broker_port=self.broker_port,
            controller_port=self.controller_port,
        )
        properties.update(self._extra_properties)
        config_path = self.work_dir / "server.properties"
        config_path.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))

        java = shutil.which("java")
        if java is None:
            raise BrokerStartError("java is not on PATH (Java 17 or newer is required)")
        jvm = [
            java,
            OWNER_MARKER,
            f"-Dlocal_kafka.started_by={os.getpid()}",
            f"-Xmx{self._heap}",
            "-Xms256m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.work_dir / 'logs'}",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG_PATH}",
            "-cp",
            distribution.classpath,
        ]
        if self.cluster_id is None:  # a new directory: format it (a kept one keeps its cluster id)
            formatted = subprocess.run(
                [*jvm, "kafka.tools.StorageTool", "format", "-t", random_cluster_id(), "-c", str(config_path)],
                capture_output=True,
                text=True,
                timeout=120,
            )
            if formatted.returncode != 0:
                raise BrokerStartError(f"StorageTool format failed:\n{formatted.stdout}{formatted.stderr}")
        with open(self._jvm_output_path, "ab") as jvm_output:
            self._process = subprocess.Popen(
                [*jvm, "kafka.Kafka", str(config_path)],
                stdin=subprocess.DEVNULL,
                stdout=jvm_output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the terminal reaches us, not the JVM
                preexec_fn=die_with_parent,
            )

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 0})
        deadline = time.monotonic() + self._ready_timeout_s
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrokerStartError(
                    f"broker exited with code {self._process.returncode}\n{self.log_tail()}"
                )
            try:
                metadata = admin.list_topics(timeout=2)
                if metadata.brokers:
                    return
            except Exception as error:  # KafkaException while the listener is not up yet
                last_error = error
            time.sleep(0.2)
        raise BrokerStartError(
            f"broker not ready after {self._ready_timeout_s}s ({last_error})\n{self.log_tail()}"
        )
