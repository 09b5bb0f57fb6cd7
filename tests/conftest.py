"""Fixtures shared by every test: one real Kafka broker per session, unique topics per test, and
one real schema registry per session for the tests that ask for it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from local_kafka.broker import pid_alive
from local_kafka.select import KafkaEndpoint, kafka_broker
from local_registry.select import RegistryEndpoint, schema_registry
from testkit.processor import ProcessorHarness

_broker_report: list[str] = []


@pytest.fixture(scope="session")
def kafka_endpoint() -> Iterator[KafkaEndpoint]:
    """The session's broker: KAFKA_BOOTSTRAP_SERVERS, else testcontainers, else a local JVM."""
    with kafka_broker() as endpoint:
        _broker_report.append(f"Kafka broker: {endpoint.description} at {endpoint.bootstrap_servers}")
        yield endpoint
    broker = endpoint.local_broker
    if broker is not None:
        # The runner must never leave a JVM or a temp directory behind.
        assert broker.pid is None, "broker process handle still held after stop"
        assert broker.work_dir is not None and not broker.work_dir.exists(), (
            f"broker temp dir left behind: {broker.work_dir}"
        )
        _broker_report.append("Kafka broker stopped: no JVM left, temp dir removed")


@pytest.fixture(scope="session")
def registry_endpoint() -> Iterator[RegistryEndpoint]:
    """The session's schema registry, started on first use: SCHEMA_REGISTRY_URL, else a local Apicurio JVM."""
    with schema_registry() as endpoint:
        _broker_report.append(f"Schema registry: {endpoint.description} at {endpoint.url}")
        yield endpoint
    registry = endpoint.local_registry
    if registry is not None:
        assert registry.pid is None, "registry process handle still held after stop"
        assert registry.work_dir is not None and not registry.work_dir.exists(), (
            f"registry temp dir left behind: {registry.work_dir}"
        )
        _broker_report.append("Schema registry stopped: no JVM left, temp dir removed")


@pytest.fixture(scope="session")
def registry_url(registry_endpoint: RegistryEndpoint) -> str:
    return registry_endpoint.url


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_endpoint: KafkaEndpoint) -> str:
    return kafka_endpoint.bootstrap_servers


@pytest.fixture(scope="session")
def kafka_admin(kafka_bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": kafka_bootstrap})


@pytest.fixture
def harness(kafka_bootstrap: str, tmp_path: Path) -> Iterator[ProcessorHarness]:
    """Processors run as real processes against the session's broker, with topics of their own."""
    harness = ProcessorHarness(kafka_bootstrap, tmp_path)
    yield harness
    harness.close()


TopicFactory = Callable[..., str]


@pytest.fixture
def make_topic(kafka_admin: AdminClient, request: pytest.FixtureRequest) -> TopicFactory:
    """Create a topic whose name is unique to this test (and this call)."""
    test_slug = re.sub(r"[^a-zA-Z0-9]+", "-", request.node.name)[:60].strip("-")

    def create(label: str = "t", *, partitions: int = 1, config: dict[str, str] | None = None) -> str:
        name = f"{test_slug}.{label}.{uuid.uuid4().hex[:8]}"
        futures = kafka_admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})]
        )
        futures[name].result(timeout=30)
        return name

    return create


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in _broker_report:
        terminalreporter.write_line(line)


__all__ = ["TopicFactory", "pid_alive"]
