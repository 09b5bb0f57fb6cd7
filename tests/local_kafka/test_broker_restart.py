"""A broker on a data directory stops (SIGTERM, data kept) and starts again on the same directory
and port with its topics, committed records and consumer offsets; from Python and from the shell."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from local_kafka.broker import LocalKafkaBroker, pid_alive

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("java") is None, reason="needs Java 17+")]
ROOT = Path(__file__).resolve().parents[2]


def _produce_committed_and_aborted(bootstrap: str, topic: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"restart-{uuid.uuid4().hex}"})
    producer.init_transactions(30)
    producer.begin_transaction()
    for index in range(3):
        producer.produce(topic, key=b"k", value=f"committed-{index}".encode())
    producer.commit_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, key=b"k", value=b"aborted")
    producer.flush(30)
    producer.abort_transaction(30)


def _read_committed(bootstrap: str, topic: str, group: str, *, commit: bool = False) -> list[bytes]:
    """Every committed record after the group's offsets, read until *every* partition reports its end.

    Stopping at the first end-of-partition is wrong for a topic of two partitions: the empty one
    can report its end before the other delivers its records (CI stop 19 read [] that way)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "isolation.level": "read_committed",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "enable.partition.eof": True})
    partitions = set(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    consumer.subscribe([topic])
    values: list[bytes] = []
    at_end: set[int] = set()
    # A restarted JVM must find the group coordinator and load the offsets before the first fetch:
    # one deadline for the whole read, not one per poll.
    deadline = time.monotonic() + 60
    try:
        while at_end != partitions:
            assert time.monotonic() < deadline, f"no end of {topic} within 60 s; read {values}, ends {sorted(at_end)}"
            message = consumer.poll(1)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                at_end.add(message.partition() or 0)
                continue
            at_end.discard(message.partition() or 0)
            values.append(message.value() or b"")
        if commit and values:
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return values


def test_broker_restarted_on_its_data_dir_keeps_port_cluster_id_topics_records_and_offsets(tmp_path: Path) -> None:
    data_dir = tmp_path / "kafka"
    broker = LocalKafkaBroker(data_dir=data_dir).start()
    try:
        port, cluster_id, first_pid = broker.broker_port, broker.cluster_id, broker.pid
        topic = f"restart-{uuid.uuid4().hex[:8]}"
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
        _produce_committed_and_aborted(broker.bootstrap_servers, topic)
        assert _read_committed(broker.bootstrap_servers, topic, "g1", commit=True) == [
            b"committed-0", b"committed-1", b"committed-2"]

        broker.stop()
        assert first_pid is not None and not pid_alive(first_pid)
        assert (data_dir / "data" / "meta.properties").exists(), "stop must keep the data directory"

        broker.start()
        assert (broker.broker_port, broker.cluster_id) == (port, cluster_id)
        assert broker.pid != first_pid
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        assert len(admin.list_topics(timeout=10).topics[topic].partitions) == 2
        assert _read_committed(broker.bootstrap_servers, topic, "g2") == [
            b"committed-0", b"committed-1", b"committed-2"]
        assert _read_committed(broker.bootstrap_servers, topic, "g1") == [], "g1's committed offsets were lost"
    finally:
        broker.stop()
    assert data_dir.exists()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "local_kafka", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=180, env={k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"})


def test_cli_start_stop_start_on_one_data_dir_serves_the_same_port_and_records(tmp_path: Path) -> None:
    data_dir = tmp_path / "cli-kafka"
    started = _cli("start", "--data-dir", str(data_dir), "--print-env")
    try:
        assert started.returncode == 0, started.stderr
        assert started.stdout.startswith("export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:"), started.stdout
        bootstrap = started.stdout.strip().split("=", 1)[1]
        again = _cli("start", "--data-dir", str(data_dir))
        assert again.returncode == 1 and "already runs" in again.stderr

        topic = "cli-restart"
        admin = AdminClient({"bootstrap.servers": bootstrap})  # held: a collected client cancels its futures
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
        _produce_committed_and_aborted(bootstrap, topic)

        stopped = _cli("stop", "--data-dir", str(data_dir))
        assert stopped.returncode == 0 and "data kept" in stopped.stdout, stopped.stdout + stopped.stderr
        port = bootstrap.rsplit(":", 1)[1]
        restarted = _cli("start", "--data-dir", str(data_dir), "--port", port, "--print-env")
        assert restarted.returncode == 0, restarted.stderr
        assert restarted.stdout.strip() == f"export KAFKA_BOOTSTRAP_SERVERS={bootstrap}"
        assert _read_committed(bootstrap, topic, "after-restart") == [b"committed-0", b"committed-1", b"committed-2"]
    finally:
        final = _cli("stop", "--data-dir", str(data_dir))
    assert final.returncode == 0, final.stderr
    assert _cli("stop", "--data-dir", str(data_dir)).stdout.startswith("no broker running")
