"""`python -m status_consumer` against a real broker: it waits for a topic that does not exist
yet, then prints every change; it reports undecodable records and an unreachable broker on
stderr instead of printing nothing; `--until-end` stops at the end of what is committed."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from local_kafka.broker import free_loopback_port
from wire import serde
from wire.examples import SAMPLES

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
CHANGES = [record for name, _, record in SAMPLES if name == "ExecutionStateChange"]


class Lines:
    """A process's stdout and stderr lines, read in threads so a wait can have a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.out: queue.Queue[str] = queue.Queue()
        self.err: queue.Queue[str] = queue.Queue()
        for stream, sink in ((process.stdout, self.out), (process.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()

    @staticmethod
    def _pump(stream: IO[str] | None, sink: queue.Queue[str]) -> None:
        assert stream is not None
        for line in stream:
            sink.put(line.rstrip("\n"))

    @staticmethod
    def wait_for(sink: queue.Queue[str], text: str, timeout_s: float = 30) -> list[str]:
        seen: list[str] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                seen.append(sink.get(timeout=0.2))
            except queue.Empty:
                continue
            if text in seen[-1]:
                return seen
        raise AssertionError(f"no line with {text!r} within {timeout_s}s; saw {seen}")


def _start(*args: str, bootstrap: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "status_consumer", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap})


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def _publish(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    for value in values:
        producer.produce(topic, key=b"exec_20260218_abc", value=value)
    assert producer.flush(30) == 0


def test_status_consumer_started_before_its_topic_waits_then_prints_every_change_and_reports_bad_records(
        kafka_bootstrap: str, processes: list[subprocess.Popen[str]]) -> None:
    topic = f"state-changes-{uuid.uuid4().hex[:8]}"
    process = _start("--topic", topic, bootstrap=kafka_bootstrap)
    processes.append(process)
    lines = Lines(process)
    Lines.wait_for(lines.err, f"topic {topic} does not exist yet")

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
    Lines.wait_for(lines.err, "exists now")
    _publish(kafka_bootstrap, topic, [serde.encode("ExecutionStateChange", CHANGES[0]), b"not avro",
                                      serde.encode("ExecutionStateChange", CHANGES[1])])

    printed = Lines.wait_for(lines.out, f"#{CHANGES[1]['sequence']}")
    assert [line for line in printed if "exec_20260218_abc" in line] == printed and len(printed) == 2
    Lines.wait_for(lines.err, "skipped a record: cannot decode ExecutionStateChange")
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0


def test_status_consumer_until_end_prints_the_committed_history_and_exits(
        kafka_bootstrap: str, make_topic: Callable[..., str]) -> None:
    topic = make_topic("changes", partitions=3)
    _publish(kafka_bootstrap, topic, [serde.encode("ExecutionStateChange", change) for change in CHANGES])
    completed = subprocess.run(
        [sys.executable, "-m", "status_consumer", "--topic", topic, "--from-beginning", "--until-end",
         "--execution-id", "exec_20260218_abc"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap})
    assert completed.returncode == 0, completed.stderr
    assert len(completed.stdout.splitlines()) == len(CHANGES), completed.stdout


def test_status_consumer_says_when_kafka_cannot_be_reached(processes: list[subprocess.Popen[str]]) -> None:
    process = _start("--topic", "execution-state-changes", bootstrap=f"127.0.0.1:{free_loopback_port()}")
    processes.append(process)
    Lines.wait_for(Lines(process).err, "cannot reach Kafka at 127.0.0.1:")
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
