"""Choose the Kafka broker for tests and the demo.

In this order: `KAFKA_BOOTSTRAP_SERVERS` if set (an existing cluster always wins); else a
container from the official `apache/kafka` image when a Docker engine answers; else the
local JVM broker assembled from Maven Central.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

from local_kafka.broker import LocalKafkaBroker, free_loopback_port

BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"
IMAGE_ENV = "KAFKA_IMAGE"
DEFAULT_IMAGE = "apache/kafka:4.3.1"


@dataclass(frozen=True, slots=True)
class KafkaEndpoint:
    bootstrap_servers: str
    kind: str  # "external", "testcontainers" or "local-jvm"
    description: str
    # The process we started, when we started one here (for leftover checks).
    local_broker: LocalKafkaBroker | None = None


def docker_engine_answers(timeout_s: float = 3.0) -> bool:
    """True when a Docker engine (not just the client) responds to a ping."""
    try:
        import docker  # comes with testcontainers, an optional (dev) dependency

        client = docker.from_env(timeout=int(max(1, timeout_s)))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def apache_kafka_container_env(host_port: int) -> dict[str, str]:
    """Environment for a single-node KRaft `apache/kafka` container.

    The image maps KAFKA_<PROPERTY> variables to broker properties. The container listens
    on 9092 inside and advertises the host port it is published on, chosen up front.
    """
    return {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": "PLAINTEXT://0.0.0.0:9092,CONTROLLER://0.0.0.0:9093",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://127.0.0.1:{host_port}",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
    }


def publish_on_loopback(ports: dict[str, int | None], container_port: int, host_port: int) -> None:
    """Publish a container's port on 127.0.0.1:`host_port` only, in a container's `ports` mapping.

    testcontainers' `with_bind_ports` takes a host port alone (which publishes on every interface;
    4.15 fails on an (address, port) pair). The mapping goes to docker-py's `containers.create`,
    whose (host address, port) value binds that address: testcontainers types it narrower.
    """
    bindings = cast("dict[str, tuple[str, int] | int | None]", ports)
    bindings[f"{container_port}/tcp"] = ("127.0.0.1", host_port)


@contextmanager
def _container_broker() -> Iterator[KafkaEndpoint]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    image = os.environ.get(IMAGE_ENV, DEFAULT_IMAGE)
    host_port = free_loopback_port()
    container = DockerContainer(image)
    publish_on_loopback(container.ports, 9092, host_port)
    for key, value in apache_kafka_container_env(host_port).items():
        container.with_env(key, value)
    with container:
        wait_for_logs(container, "Kafka Server started", timeout=120)
        yield KafkaEndpoint(
            bootstrap_servers=f"127.0.0.1:{host_port}",
            kind="testcontainers",
            description=f"container {image}",
        )


@contextmanager
def _local_jvm_broker() -> Iterator[KafkaEndpoint]:
    broker = LocalKafkaBroker().start()
    try:
        yield KafkaEndpoint(
            bootstrap_servers=broker.bootstrap_servers,
            kind="local-jvm",
            description=f"Apache Kafka {broker.kafka_version} (local JVM, pid {broker.pid})",
            local_broker=broker,
        )
    finally:
        broker.stop()


@contextmanager
def kafka_broker() -> Iterator[KafkaEndpoint]:
    """Yield a broker to use, starting (and afterwards stopping) one if needed."""
    external = os.environ.get(BOOTSTRAP_ENV, "").strip()
    if external:
        yield KafkaEndpoint(external, "external", f"{BOOTSTRAP_ENV}={external}")
    elif docker_engine_answers():
        with _container_broker() as endpoint:
            yield endpoint
    else:
        with _local_jvm_broker() as endpoint:
            yield endpoint
