"""Kafka connection settings: bootstrap servers, SASL/SSL pass-through, secrets kept out of logs."""

from __future__ import annotations

import argparse

import pytest

from kafka_client import settings


def parse(argv: list[str], environ: dict[str, str]) -> settings.KafkaSettings:
    parser = argparse.ArgumentParser()
    settings.add_arguments(parser)
    return settings.from_arguments(parser.parse_args(argv), environ)


def test_environment_supplies_bootstrap_and_client_properties() -> None:
    result = parse([], {
        "KAFKA_BOOTSTRAP_SERVERS": "k1:9093",
        "KAFKA_CLIENT_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_CLIENT_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_CLIENT_SSL_CA_LOCATION": "/etc/ca.pem",
        "UNRELATED": "x",
    })
    assert result.base_config() == {
        "bootstrap.servers": "k1:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "ssl.ca.location": "/etc/ca.pem",
    }


def test_flags_win_over_the_environment() -> None:
    result = parse(
        ["--bootstrap-servers", "flag:9092", "--kafka-config", "sasl.mechanism=PLAIN"],
        {"KAFKA_BOOTSTRAP_SERVERS": "env:9092", "KAFKA_CLIENT_SASL_MECHANISM": "SCRAM-SHA-256"},
    )
    assert result.bootstrap_servers == "flag:9092"
    assert result.client_config["sasl.mechanism"] == "PLAIN"


def test_redacted_settings_hide_passwords() -> None:
    result = parse([], {"KAFKA_BOOTSTRAP_SERVERS": "k:1", "KAFKA_CLIENT_SASL_PASSWORD": "hunter2"})
    assert "hunter2" not in repr(result.redacted())
    assert result.redacted()["sasl.password"] == "***"


def test_missing_bootstrap_servers_is_a_clear_error() -> None:
    with pytest.raises(SystemExit, match="bootstrap servers are required"):
        parse([], {})


def test_malformed_kafka_config_flag_is_a_clear_error() -> None:
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        parse(["--bootstrap-servers", "k:1", "--kafka-config", "no-equals-sign"], {})
