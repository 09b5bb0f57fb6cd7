"""Gateway configuration from flags and GATEWAY_* / TOPIC_* / KAFKA_* / OTEL_* variables, validated
in one place: bad values are named, secrets never shown, principals files checked."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway import config as gateway_config
from gateway import kafka_io
from gateway.auth import DEFAULT_SCOPES, BearerAuth, Scope, token_fingerprint
from gateway.read_model import StateDir
from kafka_client.settings import KafkaSettings
from testkit.processor import ROOT

BASE = {"KAFKA_BOOTSTRAP_SERVERS": "broker:9092", "GATEWAY_API_TOKENS": "tok-a, tok-b,,tok-a"}
_PREFIXES = ("GATEWAY_", "KAFKA_", "TOPIC_", "PROCESSOR_", "OTEL_")

Env = Callable[..., None]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Env:
    """Replace every variable the gateway reads with the given ones."""
    for name in list(os.environ):
        if name.startswith(_PREFIXES):
            monkeypatch.delenv(name)

    def apply(**variables: str) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
    return apply


def load_error(argv: list[str] | None = None) -> tuple[str, ...]:
    with pytest.raises(gateway_config.ConfigError) as caught:
        gateway_config.load(argv or [])
    return caught.value.lines


def test_config_defaults_bind_loopback_and_keep_limits_small(env: Env) -> None:
    env(**BASE)
    config = gateway_config.load([])
    assert (config.host, config.port, config.result_timeout_s, config.signature_tolerance_s) == (
        "127.0.0.1", 8080, 5.0, 300)
    assert config.api_tokens == ("tok-a", "tok-b")  # trimmed, deduplicated, empty items dropped
    assert config.webhook_secrets == () and config.principals == ()
    assert config.kafka.bootstrap_servers == "broker:9092"
    assert (config.max_body_bytes, config.webhook_max_body_bytes, config.artifact_max_body_bytes) == (
        65536, 16384, 1048576)
    assert (config.max_connections, config.header_timeout_s, config.body_timeout_s) == (512, 10.0, 10.0)
    assert (config.inline_artifacts, config.trace_exporter) == (False, "none")


def test_config_environment_and_flags_with_flags_winning(env: Env, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("# advisors\ntok-file-1\n\ntok-file-2\n")
    secrets = tmp_path / "secrets"
    secrets.write_text("whsec-new\nwhsec-old\n")
    env(**BASE, GATEWAY_HOST="0.0.0.0", GATEWAY_PORT="9000", GATEWAY_API_TOKENS_FILE=str(tokens),
        GATEWAY_WEBHOOK_SECRETS="whsec-env", GATEWAY_WEBHOOK_SECRETS_FILE=str(secrets),
        GATEWAY_RESULT_TIMEOUT_S="2.5", TOPIC_EXECUTION_COMMANDS="cmds", TOPIC_ORDER_EVENTS="events",
        KAFKA_CLIENT_SECURITY_PROTOCOL="SASL_SSL", KAFKA_CLIENT_SASL_PASSWORD="kafka-pw",
        GATEWAY_INLINE_ARTIFACTS="true", GATEWAY_MAX_CONNECTIONS="64", GATEWAY_LOG_LEVEL="debug",
        OTEL_TRACES_EXPORTER="Console")
    config = gateway_config.load(["--port", "9100", "--header-timeout", "3"])
    assert (config.host, config.port, config.result_timeout_s, config.header_timeout_s) == ("0.0.0.0", 9100, 2.5, 3)
    assert config.api_tokens == ("tok-a", "tok-b", "tok-file-1", "tok-file-2")
    assert config.webhook_secrets == ("whsec-env", "whsec-new", "whsec-old")
    assert (config.topics.execution_commands, config.topics.order_events) == ("cmds", "events")
    assert config.topics.command_results == "command-results"
    assert config.kafka.client_config["security.protocol"] == "SASL_SSL"
    assert (config.inline_artifacts, config.max_connections, config.log_level, config.trace_exporter) == (
        True, 64, "DEBUG", "console")
    described = str(config.described()) + repr(config)
    for secret in ("tok-a", "tok-file-1", "whsec-env", "whsec-old", "kafka-pw"):
        assert secret not in described


@pytest.mark.parametrize(("variables", "argv", "expected"), [
    ({"GATEWAY_PORT": "eighty"}, [], "GATEWAY_PORT: Input should be a valid integer"),
    ({}, ["--port", "70000"], "--port: Input should be less than or equal to 65535"),
    ({"GATEWAY_RESULT_TIMEOUT_S": "-1"}, [], "GATEWAY_RESULT_TIMEOUT_S: Input should be greater than 0"),
    ({"GATEWAY_INLINE_ARTIFACTS": "perhaps"}, [], "GATEWAY_INLINE_ARTIFACTS: Input should be a valid boolean"),
    ({"GATEWAY_WEBHOOK_MAX_BODY_BYTES": "10"}, [], "GATEWAY_WEBHOOK_MAX_BODY_BYTES: Input should be greater"),
    ({"GATEWAY_LOG_LEVEL": "loud"}, [], "GATEWAY_LOG_LEVEL: Input should be 'DEBUG'"),
    ({"OTEL_TRACES_EXPORTER": "jaeger"}, [], "OTEL_TRACES_EXPORTER: Input should be 'none', 'console' or 'otlp'"),
    ({"GATEWAY_API_TOKENS_FILE": "/nonexistent/tokens"}, [], "GATEWAY_API_TOKENS_FILE: cannot read"),
    ({}, ["--kafka-config", "novalue"], "--kafka-config: --kafka-config expects KEY=VALUE"),
])
def test_config_bad_value_is_one_line_naming_its_flag_or_variable(
        env: Env, variables: dict[str, str], argv: list[str], expected: str) -> None:
    env(**BASE, **variables)
    [line] = load_error(argv)
    assert line.startswith(expected), line


def test_config_every_bad_value_is_reported_and_secrets_are_never_echoed(env: Env) -> None:
    env(GATEWAY_API_TOKENS="tok-secret-value", GATEWAY_PORT="x", GATEWAY_BODY_TIMEOUT_S="0")
    lines = load_error()
    assert [line.split(":")[0] for line in lines] == [
        "KAFKA_BOOTSTRAP_SERVERS", "GATEWAY_PORT", "GATEWAY_BODY_TIMEOUT_S"]
    assert lines[0] == "KAFKA_BOOTSTRAP_SERVERS: required (or --bootstrap-servers)"
    assert "tok-secret-value" not in " ".join(lines)


def test_config_without_any_token_refuses_to_start(env: Env) -> None:
    env(KAFKA_BOOTSTRAP_SERVERS="b:9092")
    [line] = load_error()
    assert "GATEWAY_API_PRINCIPALS_FILE" in line and "GATEWAY_API_TOKENS" in line


def test_config_topic_names_match_the_processor_for_the_same_environment(env: Env) -> None:
    from wire.topics import TopicNames

    env(**BASE, PROCESSOR_APPLICATION_ID="exec-prod", TOPIC_COMMAND_RESULTS="results-v2")
    assert gateway_config.load([]).topics == TopicNames.defaults("exec-prod", os.environ)


# -- the principals file --------------------------------------------------------------------------

ADVISOR_TOKEN = "advisor-token-0123456789abcdef"
TOOL_TOKEN = "proposal-tool-token-fedcba9876543210"


def principals_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "principals.toml"
    path.write_text(text)
    return path


def test_principals_file_gives_each_token_a_principal_and_scopes(env: Env, tmp_path: Path) -> None:
    digest = hashlib.sha256(TOOL_TOKEN.encode()).hexdigest()
    path = principals_file(tmp_path, f'''
# tokens of the advisor API
[[tokens]]
principal = "advisor-app"
token = "{ADVISOR_TOKEN}"

[[tokens]]
principal = "proposal-tool"
token_sha256 = "{digest}"
scopes = ["executions:read", "executions:write", "artifacts:inline"]
''')
    env(KAFKA_BOOTSTRAP_SERVERS="b:9092", GATEWAY_API_PRINCIPALS_FILE=str(path), GATEWAY_API_TOKENS="legacy-token")
    config = gateway_config.load([])
    auth = BearerAuth(config.token_entries())
    advisor = auth.authenticate(f"Bearer {ADVISOR_TOKEN}")
    tool = auth.authenticate(f"Bearer {TOOL_TOKEN}")
    legacy = auth.authenticate("Bearer legacy-token")
    assert advisor is not None and tool is not None and legacy is not None
    assert (advisor.name, advisor.scopes) == ("advisor-app", DEFAULT_SCOPES)
    assert (tool.name, tool.allows(Scope.INLINE_ARTIFACTS)) == ("proposal-tool", True)
    assert (legacy.name, legacy.scopes) == (token_fingerprint("legacy-token"), DEFAULT_SCOPES)
    assert auth.authenticate(f"Bearer {digest}") is None  # the digest is not a token
    assert config.described()["principals"] == ["advisor-app", "proposal-tool"]
    assert ADVISOR_TOKEN not in str(config.described()) + repr(config)


@pytest.mark.parametrize(("text", "expected"), [
    ('[[tokens]]\nprincipal = "a"\n', "tokens.0: Value error, give exactly one of token or token_sha256"),
    (f'[[tokens]]\nprincipal = "a"\ntoken = "{ADVISOR_TOKEN}"\ntoken_sha256 = "{"0" * 64}"\n',
     "give exactly one of token or token_sha256"),
    (f'[[tokens]]\nprincipal = "a"\ntoken = "{ADVISOR_TOKEN}"\nscopes = ["executions:admin"]\n',
     "tokens.0.scopes.0: Input should be"),
    (f'[[tokens]]\nprincipal = "a"\ntoken = "{ADVISOR_TOKEN}"\nscopes = []\n', "tokens.0.scopes: List should have"),
    ('[[tokens]]\nprincipal = "a"\ntoken = "short"\n', "tokens.0.token: String should have at least 16"),
    (f'[[tokens]]\nprincipal = "has space"\ntoken = "{ADVISOR_TOKEN}"\n', "tokens.0.principal: String should match"),
    (f'[[tokens]]\nprincipal = "a"\ntoken = "{ADVISOR_TOKEN}"\nrole = "admin"\n', "tokens.0.role: Extra inputs"),
    ("tokens = [", "is not TOML"),
    (f'[[tokens]]\nprincipal = "a"\ntoken = "{ADVISOR_TOKEN}"\n[[tokens]]\nprincipal = "b"\ntoken = "{ADVISOR_TOKEN}"\n',
     "is configured twice, for 'a' and 'b'"),
])
def test_principals_file_mistakes_are_one_line_naming_the_variable_and_entry(
        env: Env, tmp_path: Path, text: str, expected: str) -> None:
    env(KAFKA_BOOTSTRAP_SERVERS="b:9092", GATEWAY_API_PRINCIPALS_FILE=str(principals_file(tmp_path, text)))
    [line] = load_error()
    assert line.startswith("GATEWAY_API_PRINCIPALS_FILE: ") and expected in line, line
    assert ADVISOR_TOKEN not in line


# -- python -m gateway ----------------------------------------------------------------------------


def run_gateway(*args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(_PREFIXES)}
    return subprocess.run([sys.executable, "-m", "gateway", *args], cwd=ROOT, env={**clean, **variables},
                          capture_output=True, text=True, timeout=60)


def test_cli_bad_variable_exits_2_with_one_line_and_no_traceback() -> None:
    done = run_gateway(KAFKA_BOOTSTRAP_SERVERS="b:9092", GATEWAY_API_TOKENS="t", GATEWAY_PORT="eighty")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "python -m gateway: GATEWAY_PORT: Input should be a valid integer, unable to parse string as an "
        "integer (got 'eighty')"]


def test_cli_help_works_whatever_the_environment_holds() -> None:
    done = run_gateway("--help", GATEWAY_PORT="eighty", GATEWAY_MAX_CONNECTIONS="many")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "--max-connections" in done.stdout and "GATEWAY_MAX_CONNECTIONS" in done.stdout


def test_cli_state_directory_in_use_exits_2_naming_it(tmp_path: Path) -> None:
    held = StateDir(tmp_path / "state")  # another gateway's
    try:
        done = run_gateway(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", GATEWAY_API_TOKENS="t",
                           GATEWAY_STATE_DIR=str(tmp_path / "state"))
    finally:
        held.close()
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == (f"python -m gateway: GATEWAY_STATE_DIR: {tmp_path / 'state'} is in use by "
                                            "another gateway process; give each instance its own state directory")


def test_config_state_directory_from_its_variable_or_flag(env: Env, tmp_path: Path) -> None:
    env(**BASE)
    assert gateway_config.load([]).state_dir is None  # a temporary directory, rebuilt at every start
    env(GATEWAY_STATE_DIR=str(tmp_path / "from-env"))
    assert gateway_config.load([]).state_dir == tmp_path / "from-env"
    assert gateway_config.load(["--state-dir", str(tmp_path / "flag")]).state_dir == tmp_path / "flag"


# -- Kafka client properties ------------------------------------------------------------------------


def test_kafka_client_properties_win_over_the_gateways_defaults() -> None:
    user = KafkaSettings("b:9092", {"linger.ms": "50", "compression.type": "zstd", "fetch.wait.max.ms": "10",
                                    "security.protocol": "SASL_SSL", "client.id": "mine",
                                    "enable.idempotence": "true", "isolation.level": "read_committed"})
    producer = kafka_io.producer_config(user, "gw-producer")
    consumer = kafka_io.assign_only_consumer_config(user, "gw-consumer")
    assert (producer["linger.ms"], producer["compression.type"], producer["client.id"]) == ("50", "zstd", "mine")
    assert producer["security.protocol"] == consumer["security.protocol"] == "SASL_SSL"
    assert (producer["enable.idempotence"], producer["partitioner"]) == (True, "murmur2_random")
    assert (consumer["fetch.wait.max.ms"], consumer["isolation.level"]) == ("10", "read_committed")


def test_kafka_client_property_a_guarantee_rests_on_is_refused_at_start_naming_it_and_why(env: Env) -> None:
    env(**BASE, KAFKA_CLIENT_ISOLATION_LEVEL="read_uncommitted", KAFKA_CLIENT_PARTITIONER="consistent_random",
        KAFKA_CLIENT_LINGER_MS="20")
    lines = load_error()
    assert any(line.startswith("KAFKA_CLIENT_ISOLATION_LEVEL='read_uncommitted' refused: isolation.level must be "
                               "'read_committed', because") for line in lines), lines
    assert any(line.startswith("KAFKA_CLIENT_PARTITIONER='consistent_random' refused") for line in lines), lines
    assert not any("LINGER" in line for line in lines)
    env(KAFKA_CLIENT_ISOLATION_LEVEL="read_committed", KAFKA_CLIENT_PARTITIONER="murmur2_random")
    assert gateway_config.load([]).kafka.client_config["linger.ms"] == "20"
