"""Gateway configuration: flags and environment variables, parsed and validated in one place.

`GatewaySettings` (pydantic-settings) reads every `GATEWAY_*` variable plus
`KAFKA_BOOTSTRAP_SERVERS`, `PROCESSOR_APPLICATION_ID` and `OTEL_TRACES_EXPORTER`; a flag, when
given, wins over its variable. Flags are plain strings to argparse (it never converts them),
so `--help` works whatever the environment holds, and every value, from a flag or a variable,
is validated by the same model. A bad value is a `ConfigError` whose lines each name the flag
or variable that held it; `python -m gateway` prints them and exits with status 2.

Topic names come from the same `TOPIC_*` variables the processor reads
(`wire.topics.TopicNames`), so one environment configures both; other librdkafka properties
from `KAFKA_CLIENT_*` or `--kafka-config` (`kafka_client.settings`).

Secrets (bearer tokens, webhook secrets) are read from a variable or a file, never from a flag
(a command line is visible to every local user), and are never part of `repr()`, of an error
message or of a log line.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway import kafka_io
from gateway.auth import PrincipalsFileError, TokenEntry, load_principals_file, merge_entries
from kafka_client import service_config
from kafka_client import settings as kafka_settings
from kafka_client.service_config import ConfigError as ConfigError  # raised by load(); callers name it here
from kafka_client.settings import KafkaSettings
from observability.tracing import EXPORTERS
from wire.topics import TopicNames

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_RESULT_TIMEOUT_S = 5.0
DEFAULT_SIGNATURE_TOLERANCE_S = 300
DEFAULT_MAX_BODY_BYTES = 64 * 1024  # any JSON body: creates without an inline artifact, cancels
DEFAULT_ARTIFACT_MAX_BODY_BYTES = 1024 * 1024  # a create that may carry an inline artifact
DEFAULT_WEBHOOK_MAX_BODY_BYTES = 16 * 1024  # an order event is well under 4 KiB
DEFAULT_MAX_CONNECTIONS = 512
DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_BODY_TIMEOUT_S = 10.0
DEFAULT_LIST_LIMIT = 50
MAX_LIST_LIMIT = 200
DEFAULT_EVENTS_LIMIT = 100  # lifecycle rows per page of GET .../events
MAX_EVENTS_LIMIT = 1000
DEFAULT_CONSOLE_SESSION_IDLE_S = 1800.0  # the operator console's sessions (gateway.console, docs/console.md)
DEFAULT_CONSOLE_DEAD_LETTERS = 500


@dataclass(frozen=True)
class GatewayConfig:
    """What the running gateway uses (tests build it directly)."""

    kafka: KafkaSettings = field(repr=False)  # its repr would show SASL passwords; see described()
    topics: TopicNames
    application_id: str = "execution-processor"  # the processor's: prefix of its internal topics
    instance_id: str = "gateway"
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    api_tokens: tuple[str, ...] = field(default=(), repr=False)  # bare tokens: principal tok-<8 hex>
    principals: tuple[TokenEntry, ...] = field(default=(), repr=False)  # tokens with a principal and scopes
    webhook_secrets: tuple[str, ...] = field(default=(), repr=False)
    inline_artifacts: bool = False  # creates may carry the proposal artifact inline (with the scope)
    result_timeout_s: float = DEFAULT_RESULT_TIMEOUT_S
    signature_tolerance_s: int = DEFAULT_SIGNATURE_TOLERANCE_S
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    artifact_max_body_bytes: int = DEFAULT_ARTIFACT_MAX_BODY_BYTES
    webhook_max_body_bytes: int = DEFAULT_WEBHOOK_MAX_BODY_BYTES
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    read_sync_timeout_s: float = 2.0  # how long a miss waits for the read model to catch up
    state_dir: Path | None = None  # the read model's store; None: a temporary directory, rebuilt at every start
    log_level: str = "INFO"
    trace_exporter: str = "none"
    console: bool = True  # the operator console at /console (docs/console.md)
    console_secure_cookie: bool = False  # served over TLS (a terminating proxy): Secure __Host- cookie
    console_session_idle_s: float = DEFAULT_CONSOLE_SESSION_IDLE_S
    console_dead_letters: int = DEFAULT_CONSOLE_DEAD_LETTERS  # the dead-letters page's ring

    def __post_init__(self) -> None:
        if self.result_timeout_s <= 0 or self.header_timeout_s <= 0 or self.body_timeout_s <= 0:
            raise ValueError("timeouts must be > 0")
        if self.signature_tolerance_s <= 0:
            raise ValueError("signature tolerance must be > 0")
        if min(self.max_body_bytes, self.artifact_max_body_bytes, self.webhook_max_body_bytes,
               self.max_connections) <= 0:
            raise ValueError("body limits and the connection cap must be > 0")
        if any(not token for token in self.api_tokens) or any(not s for s in self.webhook_secrets):
            raise ValueError("empty bearer token or webhook secret")

    def token_entries(self) -> tuple[TokenEntry, ...]:
        """Every accepted token: the principals file's and the bare ones."""
        return merge_entries(self.principals, (TokenEntry.bare(token) for token in self.api_tokens))

    @property
    def largest_body_bytes(self) -> int:
        return max(self.max_body_bytes, self.artifact_max_body_bytes, self.webhook_max_body_bytes)

    def described(self) -> dict[str, object]:
        """The configuration for a start-up log line: counts and principals instead of secrets."""
        entries = self.token_entries()
        return {
            "kafka": self.kafka.redacted(),
            "listen": f"{self.host}:{self.port}",
            "api_tokens": len(entries),
            "principals": sorted({entry.principal for entry in self.principals}),
            "webhook_secrets": len(self.webhook_secrets),
            "inline_artifacts": self.inline_artifacts,
            "result_timeout_s": self.result_timeout_s,
            "limits": {
                "max_connections": self.max_connections, "header_timeout_s": self.header_timeout_s,
                "body_timeout_s": self.body_timeout_s, "max_body_bytes": self.max_body_bytes,
                "artifact_max_body_bytes": self.artifact_max_body_bytes,
                "webhook_max_body_bytes": self.webhook_max_body_bytes,
            },
            "trace_exporter": self.trace_exporter,
            "console": {"enabled": self.console, "secure_cookie": self.console_secure_cookie,
                        "session_idle_s": self.console_session_idle_s, "dead_letters": self.console_dead_letters},
            "state_dir": None if self.state_dir is None else str(self.state_dir),
            "topics": {
                "execution_commands": self.topics.execution_commands,
                "command_results": self.topics.command_results,
                "order_events": self.topics.order_events,
                "execution_state_changes": self.topics.execution_state_changes,
                "execution_snapshots": self.topics.execution_snapshots,
            },
        }


# -- flags and variables --------------------------------------------------------------------------

PositiveSeconds = Annotated[float, Field(gt=0, le=3600)]
Bytes = Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)]


class GatewaySettings(BaseSettings):
    """Every setting, from its variable (named in each field's alias or by the prefix) or flag."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", env_ignore_empty=True, extra="ignore",
                                      populate_by_name=True)

    bootstrap_servers: str = Field(validation_alias=AliasChoices("bootstrap_servers", "KAFKA_BOOTSTRAP_SERVERS"),
                                   min_length=1)
    application_id: str = Field("execution-processor", min_length=1, max_length=200,
                                validation_alias=AliasChoices("application_id", "PROCESSOR_APPLICATION_ID"))
    host: str = Field(DEFAULT_HOST, min_length=1)
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    instance_id: str = Field(default_factory=socket.gethostname, min_length=1, max_length=200)
    api_tokens: SecretStr | None = None
    api_tokens_file: Path | None = None
    api_principals_file: Path | None = None
    webhook_secrets: SecretStr | None = None
    webhook_secrets_file: Path | None = None
    inline_artifacts: bool = False
    result_timeout_s: PositiveSeconds = DEFAULT_RESULT_TIMEOUT_S
    signature_tolerance_s: int = Field(DEFAULT_SIGNATURE_TOLERANCE_S, gt=0, le=86_400)
    max_body_bytes: Bytes = DEFAULT_MAX_BODY_BYTES
    artifact_max_body_bytes: Bytes = DEFAULT_ARTIFACT_MAX_BODY_BYTES
    webhook_max_body_bytes: Bytes = DEFAULT_WEBHOOK_MAX_BODY_BYTES
    max_connections: int = Field(DEFAULT_MAX_CONNECTIONS, ge=1, le=100_000)
    header_timeout_s: PositiveSeconds = DEFAULT_HEADER_TIMEOUT_S
    body_timeout_s: PositiveSeconds = DEFAULT_BODY_TIMEOUT_S
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    state_dir: Path | None = None
    trace_exporter: Literal["none", "console", "otlp"] = Field(
        "none", validation_alias=AliasChoices("trace_exporter", "OTEL_TRACES_EXPORTER"))
    console: bool = True
    console_secure_cookie: bool = False
    console_session_idle_s: float = Field(DEFAULT_CONSOLE_SESSION_IDLE_S, ge=60, le=86_400)
    console_dead_letters: int = Field(DEFAULT_CONSOLE_DEAD_LETTERS, ge=1, le=10_000)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("trace_exporter", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


# field -> (flag, help). Fields without a flag are secrets: variables only.
_FLAGS: dict[str, tuple[str | None, str]] = {
    "bootstrap_servers": ("--bootstrap-servers", "host:port list of the Kafka cluster (required)"),
    "application_id": ("--application-id", "the processor's application id, for default topic names "
                                           "(default execution-processor)"),
    "host": ("--host", "bind address (default 127.0.0.1)"),
    "port": ("--port", "bind port (default 8080)"),
    "instance_id": ("--instance-id", "this instance's id, in Kafka client ids (default: host name)"),
    "api_tokens": (None, "bearer tokens, comma-separated (principal tok-<8 hex>, advisor scopes)"),
    "api_tokens_file": ("--api-tokens-file", "file of bearer tokens, one per line, # comments"),
    "api_principals_file": ("--api-principals-file", "TOML file of tokens with principal and scopes "
                                                     "(docs/gateway.md)"),
    "webhook_secrets": (None, "webhook HMAC secrets, comma-separated"),
    "webhook_secrets_file": ("--webhook-secrets-file", "file of webhook HMAC secrets, one per line"),
    "inline_artifacts": ("--inline-artifacts", "true: creates may carry the artifact inline, for tokens with "
                                               "scope artifacts:inline (default false)"),
    "result_timeout_s": ("--result-timeout", "seconds a create or cancel waits for the processor before 202 "
                                             "(default 5)"),
    "signature_tolerance_s": ("--signature-tolerance", "accepted clock difference of webhook signatures, "
                                                       "seconds (default 300)"),
    "max_body_bytes": ("--max-body-bytes", "largest JSON body (default 65536)"),
    "artifact_max_body_bytes": ("--artifact-max-body-bytes", "largest create body of a token allowed inline "
                                                             "artifacts, when enabled (default 1048576)"),
    "webhook_max_body_bytes": ("--webhook-max-body-bytes", "largest webhook body (default 16384)"),
    "max_connections": ("--max-connections", "open connections at most; more are answered 503 and closed "
                                             "(default 512)"),
    "header_timeout_s": ("--header-timeout", "seconds a connection may take to send a request's headers, "
                                             "or stay idle between requests (default 10)"),
    "body_timeout_s": ("--body-timeout", "seconds a request may take to send its body (default 10)"),
    "log_level": ("--log-level", "DEBUG, INFO, WARNING or ERROR (default INFO)"),
    "state_dir": ("--state-dir", "directory of the read model's RocksDB store, kept across restarts, one per "
                                 "instance (default: a temporary directory, rebuilt from Kafka at every start)"),
    "trace_exporter": ("--trace-exporter", f"span exporter: {', '.join(EXPORTERS)} (default none)"),
    "console": ("--console", "true: serve the operator console at /console (default true; docs/console.md)"),
    "console_secure_cookie": ("--console-secure-cookie", "true: the console is reached over TLS (a terminating "
                                                         "proxy): its session cookie is Secure (default false: "
                                                         "sign-in only from loopback over plain HTTP)"),
    "console_session_idle_s": ("--console-session-idle", "seconds a console session lives unused (default 1800)"),
    "console_dead_letters": ("--console-dead-letters", "recent dead letters the console keeps (default 500)"),
}


# Settings GatewayConfig takes as they are.
_COPIED = ("application_id", "instance_id", "host", "port", "inline_artifacts", "result_timeout_s",
           "signature_tolerance_s", "max_body_bytes", "artifact_max_body_bytes", "webhook_max_body_bytes",
           "max_connections", "header_timeout_s", "body_timeout_s", "log_level", "trace_exporter", "state_dir",
           "console", "console_secure_cookie", "console_session_idle_s", "console_dead_letters")


def env_name(field_name: str) -> str:
    """The variable a setting is read from."""
    return service_config.env_name(GatewaySettings, "GATEWAY_", field_name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gateway",
        description="Execution integration HTTP gateway (RFC-0014I §5) over Kafka. Every flag has a "
                    "variable (named in its help); flags win.",
        epilog="Secrets are variables or files only: GATEWAY_API_TOKENS, GATEWAY_WEBHOOK_SECRETS. Topic names: "
               "TOPIC_* (as the processor). Tracing: OTEL_* (docs/gateway.md).",
    )
    for name, (flag, text) in _FLAGS.items():
        if flag is None:
            continue
        parser.add_argument(flag, dest=name, default=None, metavar="VALUE", help=f"{text}; env {env_name(name)}")
    parser.add_argument("--kafka-config", action="append", default=[], metavar="KEY=VALUE",
                        help=f"extra librdkafka property, e.g. security.protocol=SASL_SSL "
                             f"(env {kafka_settings.CLIENT_ENV_PREFIX}<KEY>)")
    return parser


def _source(field_name: str, flags: dict[str, str]) -> str:
    """Where a setting's value came from: its flag when given, else its variable."""
    flag = _FLAGS.get(field_name, (None, ""))[0]
    return flag if flag is not None and field_name in flags else env_name(field_name)


def _describe_errors(error: ValidationError, flags: dict[str, str]) -> list[str]:
    return service_config.describe_errors(error, GatewaySettings, env_name,
                                          lambda name: _FLAGS.get(name, (None, ""))[0], flags,
                                          secret=("api_tokens", "webhook_secrets"))


def read_secrets(inline: str | None, path: Path | None) -> tuple[str, ...]:
    """Secrets from a comma-separated value and/or a file with one secret per line."""
    values: list[str] = []
    if inline:
        values += [part.strip() for part in inline.split(",")]
    if path:
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                values.append(line)
    unique: list[str] = []
    for value in values:
        if value and value not in unique:
            unique.append(value)
    return tuple(unique)


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


def load(argv: Sequence[str] | None = None) -> GatewayConfig:
    """The configuration from flags (`argv`) and the process environment; `ConfigError` naming
    every bad value. `--help` prints the usage and exits 0 before anything is validated."""
    args = build_parser().parse_args(argv)
    flags = {name: value for name, value in vars(args).items() if name in _FLAGS and value is not None}
    try:
        settings = GatewaySettings(**flags)
    except ValidationError as error:
        raise ConfigError(_describe_errors(error, flags)) from None
    problems: list[str] = []
    try:
        client_config = kafka_settings.client_config_from(os.environ, args.kafka_config)
    except SystemExit as error:
        problems.append(f"--kafka-config: {error}")
        client_config = {}

    def secrets(field_name: str, file_field: str) -> tuple[str, ...]:
        path: Path | None = getattr(settings, file_field)
        try:
            return read_secrets(_secret(getattr(settings, field_name)), path)
        except OSError as error:
            problems.append(f"{_source(file_field, flags)}: cannot read {path}: {error.strerror or error}")
            return ()

    tokens = secrets("api_tokens", "api_tokens_file")
    webhook_secrets = secrets("webhook_secrets", "webhook_secrets_file")
    principals: tuple[TokenEntry, ...] = ()
    if settings.api_principals_file is not None:
        try:
            principals = load_principals_file(settings.api_principals_file)
        except PrincipalsFileError as error:
            problems.append(f"{_source('api_principals_file', flags)}: {error}")
    config = None
    if not problems:
        copied = {name: getattr(settings, name) for name in _COPIED}
        config = GatewayConfig(kafka=KafkaSettings(settings.bootstrap_servers, client_config),
                               topics=TopicNames.defaults(settings.application_id, os.environ),
                               api_tokens=tokens, principals=principals, webhook_secrets=webhook_secrets, **copied)
        problems += kafka_io.client_settings_problems(config.kafka)
        try:
            if not config.token_entries():
                problems.append("no bearer token configured: set GATEWAY_API_PRINCIPALS_FILE, GATEWAY_API_TOKENS "
                                "or GATEWAY_API_TOKENS_FILE")
        except PrincipalsFileError as error:
            problems.append(f"{env_name('api_principals_file')}: {error}")
    if problems or config is None:
        raise ConfigError(problems)
    return config
