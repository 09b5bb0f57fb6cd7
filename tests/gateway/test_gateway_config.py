"""Gateway configuration from flags and GATEWAY_* / TOPIC_* / KAFKA_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import config as gateway_config

BASE = {"KAFKA_BOOTSTRAP_SERVERS": "broker:9092", "GATEWAY_API_TOKENS": "tok-a, tok-b,,tok-a"}


def test_defaults_bind_loopback_and_wait_five_seconds() -> None:
    config = gateway_config.load([], BASE)
    assert (config.host, config.port, config.result_timeout_s, config.signature_tolerance_s) == (
        "127.0.0.1", 8080, 5.0, 300)
    assert config.api_tokens == ("tok-a", "tok-b")  # trimmed, deduplicated, empty items dropped
    assert config.webhook_secrets == ()
    assert config.kafka.bootstrap_servers == "broker:9092"


def test_environment_and_flags(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("# advisors\ntok-file-1\n\ntok-file-2\n")
    secrets = tmp_path / "secrets"
    secrets.write_text("whsec-new\nwhsec-old\n")
    env = {
        **BASE, "GATEWAY_HOST": "0.0.0.0", "GATEWAY_PORT": "9000", "GATEWAY_API_TOKENS_FILE": str(tokens),
        "GATEWAY_WEBHOOK_SECRETS": "whsec-env", "GATEWAY_WEBHOOK_SECRETS_FILE": str(secrets),
        "GATEWAY_RESULT_TIMEOUT_S": "2.5", "TOPIC_EXECUTION_COMMANDS": "cmds", "TOPIC_ORDER_EVENTS": "events",
        "KAFKA_CLIENT_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_CLIENT_SASL_PASSWORD": "kafka-pw",
    }
    config = gateway_config.load(["--port", "9100"], env)
    assert (config.host, config.port, config.result_timeout_s) == ("0.0.0.0", 9100, 2.5)
    assert config.api_tokens == ("tok-a", "tok-b", "tok-file-1", "tok-file-2")
    assert config.webhook_secrets == ("whsec-env", "whsec-new", "whsec-old")
    assert (config.topics.execution_commands, config.topics.order_events) == ("cmds", "events")
    assert config.topics.command_results == "command-results"
    assert config.kafka.client_config["security.protocol"] == "SASL_SSL"
    described = str(config.described()) + repr(config)
    for secret in ("tok-a", "tok-file-1", "whsec-env", "whsec-old", "kafka-pw"):
        assert secret not in described


def test_no_token_configured_refuses_to_start() -> None:
    with pytest.raises(SystemExit, match="GATEWAY_API_TOKENS"):
        gateway_config.load([], {"KAFKA_BOOTSTRAP_SERVERS": "b:9092"})


def test_bootstrap_servers_are_required() -> None:
    with pytest.raises(SystemExit):
        gateway_config.load([], {"GATEWAY_API_TOKENS": "t"})


def test_topic_names_match_the_processor_for_the_same_environment() -> None:
    from wire.topics import TopicNames

    env = {**BASE, "PROCESSOR_APPLICATION_ID": "exec-prod", "TOPIC_COMMAND_RESULTS": "results-v2"}
    assert gateway_config.load([], env).topics == TopicNames.defaults("exec-prod", env)
