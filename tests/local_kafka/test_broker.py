"""The local JVM broker: configuration for one node, start-up, version, and a clean stop."""

from __future__ import annotations

import shutil

import pytest
from confluent_kafka.admin import AdminClient

from local_kafka.assemble import kafka_version
from local_kafka.broker import LocalKafkaBroker, pid_alive, random_cluster_id, server_properties

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="needs Java 17+")


def test_server_properties_let_one_node_run_transactions_and_groups(tmp_path) -> None:
    properties = server_properties(data_dir=tmp_path, broker_port=19092, controller_port=19093)

    assert properties["process.roles"] == "broker,controller"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
        "share.coordinator.state.topic.min.isr",
    ):
        assert properties[key] == "1", key
    assert properties["group.initial.rebalance.delay.ms"] == "0"
    assert "127.0.0.1:19092" in properties["listeners"]
    assert "0.0.0.0" not in properties["listeners"]


def test_random_cluster_id_is_kafka_uuid_text() -> None:
    ids = {random_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(cluster_id) == 22 and not cluster_id.startswith("-") for cluster_id in ids)


def test_pinned_broker_version_is_kafka_4_3() -> None:
    assert kafka_version().startswith("4.3.")


@needs_java
def test_local_broker_starts_reports_its_version_and_stops_without_leftovers() -> None:
    broker = LocalKafkaBroker().start()
    pid, work_dir = broker.pid, broker.work_dir
    try:
        assert pid is not None and pid_alive(pid)
        assert broker.kafka_version.startswith("4.3.")
        metadata = AdminClient({"bootstrap.servers": broker.bootstrap_servers}).list_topics(timeout=10)
        assert len(metadata.brokers) == 1
        assert broker.bootstrap_servers.startswith("127.0.0.1:")
    finally:
        broker.stop()

    assert not pid_alive(pid)
    assert work_dir is not None and not work_dir.exists()
