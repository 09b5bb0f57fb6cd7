"""Broker selection: an external cluster always wins; the container settings fit one node."""

from __future__ import annotations

import pytest

from local_kafka import select


def test_bootstrap_servers_variable_wins_and_nothing_is_started(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker-a:9092,broker-b:9092")
    monkeypatch.setattr(select, "docker_engine_answers", lambda: pytest.fail("must not probe Docker"))
    monkeypatch.setattr(select, "_local_jvm_broker", lambda: pytest.fail("must not start a JVM"))

    with select.kafka_broker() as endpoint:
        assert (endpoint.kind, endpoint.bootstrap_servers) == ("external", "broker-a:9092,broker-b:9092")
        assert endpoint.local_broker is None


def test_container_advertises_the_loopback_port_it_is_published_on() -> None:
    env = select.apache_kafka_container_env(41234)
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://127.0.0.1:41234"
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_container_port_published_on_loopback_only() -> None:
    ports: dict[str, int | None] = {}
    select.publish_on_loopback(ports, 9092, 41234)
    assert ports == {"9092/tcp": ("127.0.0.1", 41234)}
