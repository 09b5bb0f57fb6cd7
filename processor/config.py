"""Processor configuration: flags and environment variables, parsed and validated in one place.

`ProcessorSettings` (pydantic-settings) reads every `PROCESSOR_*` variable plus
`KAFKA_BOOTSTRAP_SERVERS`; a flag, when given, wins over its variable. Flags reach argparse as
plain strings (it converts nothing), so `--help` works whatever the environment holds, and every
value, from a flag or a variable, is validated by the same model. A bad value is a `ConfigError`
whose lines each name the flag or variable that held it; `python -m processor` prints them and
exits with status 2.

Topic names come from `TOPIC_*` variables (`wire.topics.TopicNames`, e.g. `TOPIC_ORDER_EVENTS`);
any librdkafka property from `KAFKA_CLIENT_<PROPERTY>` or `--kafka-config key=value`
(`kafka_client.settings`: they win over the processor's defaults, but not over the properties
exactly-once depends on, which are refused at start-up with the reason).
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kafka_client import service_config
from kafka_client import settings as kafka_settings
from kafka_client.service_config import ConfigError as ConfigError  # raised by load(); callers name it here
from kafka_client.settings import KafkaSettings
from wire.topics import TopicNames


@dataclass(frozen=True)
class ProcessorConfig:
    kafka: KafkaSettings
    application_id: str  # consumer group id, prefix of internal topics and transactional ids
    instance_id: str  # stable per instance: its transactional.id and group.instance.id
    state_dir: Path
    topics: TopicNames
    partitions: int  # for topics the processor creates when they do not exist
    commit_interval_ms: int
    batch_size: int
    http_host: str
    http_port: int  # 0 disables the ops HTTP server
    log_level: str
    on_handler_error: str = "dead-letter"  # what a handler bug does: "dead-letter" (and go on) or "stop"
    static_membership: bool = True  # group.instance.id = instance id: a restarted instance takes its partitions back
    session_timeout_ms: int = 30_000
    shutdown_timeout_s: float = 30.0  # SIGTERM ends the process within this, whatever the broker does
    max_tickets: int = 1_000  # a proposal with more intents is refused at admission
    dead_letter_value_limit: int = 256 * 1024  # larger original values are referenced, not copied
    cache_mb: int = 32  # decoded state values a task may keep in memory
    trace_exporter: str = "none"

    @property
    def transactional_id(self) -> str:
        return f"{self.application_id}-{self.instance_id}"


class ProcessorSettings(BaseSettings):
    """Every setting, from its variable (`PROCESSOR_<NAME>` unless aliased) or its flag."""

    model_config = SettingsConfigDict(env_prefix="PROCESSOR_", env_ignore_empty=True, extra="ignore",
                                      populate_by_name=True)

    bootstrap_servers: str = Field(validation_alias=AliasChoices("bootstrap_servers", "KAFKA_BOOTSTRAP_SERVERS"),
                                   min_length=1)
    application_id: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$")] = (
        "execution-processor")
    instance_id: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$")] = Field(
        default_factory=socket.gethostname)
    state_dir: Path = Path("state")
    partitions: int = Field(6, ge=1, le=10_000)
    commit_interval_ms: int = Field(100, ge=1, le=60_000)
    batch_size: int = Field(500, ge=1, le=100_000)
    http_host: str = Field("127.0.0.1", min_length=1)
    http_port: int = Field(9464, ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    on_handler_error: Literal["dead-letter", "stop"] = "dead-letter"
    static_membership: bool = True
    session_timeout_ms: int = Field(30_000, ge=6_000, le=300_000)
    shutdown_timeout_s: float = Field(30.0, gt=0, le=600)
    max_tickets: int = Field(1_000, ge=1, le=10_000)
    dead_letter_value_limit: int = Field(256 * 1024, ge=1024, le=512 * 1024)
    cache_mb: int = Field(32, ge=0, le=4096)
    trace_exporter: Literal["none", "console", "otlp"] = Field(
        "none", validation_alias=AliasChoices("trace_exporter", "OTEL_TRACES_EXPORTER"))

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("trace_exporter", "on_handler_error", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


# field -> (flag, help)
_FLAGS: dict[str, tuple[str, str]] = {
    "bootstrap_servers": ("--bootstrap-servers", "host:port list of the Kafka cluster (required)"),
    "application_id": ("--application-id", "consumer group id and internal topic prefix "
                                           "(default execution-processor)"),
    "instance_id": ("--instance-id", "stable id of this instance: its transactional id and, with static "
                                     "membership, its group member id (default: host name)"),
    "state_dir": ("--state-dir", "directory of the RocksDB state stores, owned by one instance at a time "
                                 "(default state)"),
    "partitions": ("--partitions", "partition count of topics the processor creates (default 6)"),
    "commit_interval_ms": ("--commit-interval-ms", "longest a transaction stays open (default 100)"),
    "batch_size": ("--batch-size", "records per consume call (default 500)"),
    "http_host": ("--http-host", "address of /metrics, /healthz, /readyz (default 127.0.0.1)"),
    "http_port": ("--http-port", "port of /metrics, /healthz, /readyz; 0 disables (default 9464)"),
    "log_level": ("--log-level", "DEBUG, INFO, WARNING or ERROR (default INFO)"),
    "on_handler_error": ("--on-handler-error", "what a bug in a record handler (an exception that is not bad "
                                               "input) does: dead-letter the record and go on, or stop "
                                               "(default dead-letter; docs/design.md)"),
    "static_membership": ("--static-membership", "true: the instance id is the group member id, so a restart "
                                                 "takes the partitions back at once; partitions of an instance "
                                                 "that stops for good move after the session timeout "
                                                 "(default true; docs/design.md)"),
    "session_timeout_ms": ("--session-timeout-ms", "group session timeout: how long a silent instance keeps "
                                                   "its partitions (default 30000)"),
    "shutdown_timeout_s": ("--shutdown-timeout", "seconds SIGTERM may take before the process exits anyway "
                                                 "(default 30)"),
    "max_tickets": ("--max-tickets", "largest proposal (intents) an execution is created for; larger ones are "
                                     "refused at admission (default 1000)"),
    "dead_letter_value_limit": ("--dead-letter-value-limit", "largest original value copied into a dead letter, "
                                                             "bytes; larger ones are referenced by "
                                                             "topic/partition/offset and sha256 (default 262144)"),
    "cache_mb": ("--cache-mb", "decoded state (heads and definitions of executions still working) each "
                               "partition's task may keep in memory, MiB counted by encoded size (default 32)"),
    "trace_exporter": ("--trace-exporter", "span exporter: none, console or otlp (default none)"),
}


def env_name(field_name: str) -> str:
    """The variable a setting is read from."""
    return service_config.env_name(ProcessorSettings, "PROCESSOR_", field_name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m processor",
        description="Execution integration processor: folds commands and OMS order events into execution "
                    "state. Every flag has a variable (named in its help); flags win.",
        epilog="Topic names: TOPIC_<KIND> (e.g. TOPIC_ORDER_EVENTS). Schema registry: SCHEMA_REGISTRY_URL "
               "(docs/wire.md). Tracing: OTEL_* (docs/design.md).",
    )
    for name, (flag, text) in _FLAGS.items():
        parser.add_argument(flag, dest=name, default=None, metavar="VALUE", help=f"{text}; env {env_name(name)}")
    parser.add_argument("--kafka-config", action="append", default=[], metavar="KEY=VALUE",
                        help=f"extra librdkafka property, e.g. security.protocol=SASL_SSL; wins over the "
                             f"processor's defaults but not over what exactly-once needs "
                             f"(env {kafka_settings.CLIENT_ENV_PREFIX}<KEY>)")
    return parser


def _describe_errors(error: ValidationError, flags: Mapping[str, str]) -> list[str]:
    return service_config.describe_errors(error, ProcessorSettings, env_name,
                                          lambda name: _FLAGS.get(name, (None, ""))[0], flags)


def load(argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ) -> ProcessorConfig:
    """The configuration from flags (`argv`) and the environment; ConfigError naming every bad value.
    `--help` prints the usage and exits 0 before anything is validated."""
    args = build_parser().parse_args(argv)
    flags = {name: value for name, value in vars(args).items() if name in _FLAGS and value is not None}
    try:
        settings = ProcessorSettings(**flags) if environ is os.environ else _from(environ, flags)
    except ValidationError as error:
        raise ConfigError(_describe_errors(error, flags)) from None
    try:
        client_config = kafka_settings.client_config_from(environ, args.kafka_config)
    except SystemExit as error:
        raise ConfigError([f"--kafka-config: {error}"]) from None
    return ProcessorConfig(
        kafka=KafkaSettings(settings.bootstrap_servers, client_config),
        application_id=settings.application_id,
        instance_id=settings.instance_id,
        state_dir=settings.state_dir,
        topics=TopicNames.defaults(settings.application_id, environ),
        partitions=settings.partitions,
        commit_interval_ms=settings.commit_interval_ms,
        batch_size=settings.batch_size,
        http_host=settings.http_host,
        http_port=settings.http_port,
        log_level=settings.log_level,
        on_handler_error=settings.on_handler_error,
        static_membership=settings.static_membership,
        session_timeout_ms=settings.session_timeout_ms,
        shutdown_timeout_s=settings.shutdown_timeout_s,
        max_tickets=settings.max_tickets,
        dead_letter_value_limit=settings.dead_letter_value_limit,
        cache_mb=settings.cache_mb,
        trace_exporter=settings.trace_exporter,
    )


def _from(environ: Mapping[str, str], flags: Mapping[str, str]) -> ProcessorSettings:
    """Settings read from a given environment (tests) rather than the process's."""
    values: dict[str, Any] = {}
    for name in ProcessorSettings.model_fields:
        variable = env_name(name)
        if environ.get(variable):
            values[name] = environ[variable]
    return ProcessorSettings.model_validate({**values, **flags})
