"""Gateway configuration from flags and environment variables (flags win).

Every setting has a flag and a `GATEWAY_*` variable. Topic names come from the same `TOPIC_*`
variables the processor reads (`processor.config.TopicNames`), so one environment configures
both. Kafka connection and SASL/SSL settings come from `kafka_client.settings`
(`KAFKA_BOOTSTRAP_SERVERS`, `KAFKA_CLIENT_*`).

Secrets (bearer tokens, webhook secrets) are read from a variable or from a file (one per
line, `#` comments allowed) and are never part of `repr()` or of any log line.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kafka_client import settings as kafka_settings
from kafka_client.settings import KafkaSettings
from wire.topics import TopicNames

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_RESULT_TIMEOUT_S = 5.0
DEFAULT_SIGNATURE_TOLERANCE_S = 300
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_LIST_LIMIT = 50
MAX_LIST_LIMIT = 200


@dataclass(frozen=True)
class GatewayConfig:
    kafka: KafkaSettings = field(repr=False)  # its repr would show SASL passwords; see described()
    topics: TopicNames
    application_id: str = "execution-processor"  # the processor's: prefix of its internal topics
    instance_id: str = "gateway"
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    api_tokens: tuple[str, ...] = field(default=(), repr=False)
    webhook_secrets: tuple[str, ...] = field(default=(), repr=False)
    result_timeout_s: float = DEFAULT_RESULT_TIMEOUT_S
    signature_tolerance_s: int = DEFAULT_SIGNATURE_TOLERANCE_S
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    read_sync_timeout_s: float = 2.0  # how long a miss waits for the read model to catch up
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        if self.result_timeout_s <= 0:
            raise ValueError("result timeout must be > 0")
        if self.signature_tolerance_s <= 0:
            raise ValueError("signature tolerance must be > 0")
        if any(not token for token in self.api_tokens) or any(not s for s in self.webhook_secrets):
            raise ValueError("empty bearer token or webhook secret")

    def described(self) -> dict[str, object]:
        """The configuration for a start-up log line: counts instead of secrets."""
        return {
            "kafka": self.kafka.redacted(),
            "listen": f"{self.host}:{self.port}",
            "api_tokens": len(self.api_tokens),
            "webhook_secrets": len(self.webhook_secrets),
            "result_timeout_s": self.result_timeout_s,
            "topics": {
                "execution_commands": self.topics.execution_commands,
                "command_results": self.topics.command_results,
                "order_events": self.topics.order_events,
                "execution_state_changes": self.topics.execution_state_changes,
            },
        }


def _env(environ: Mapping[str, str], name: str, default: str) -> str:
    return environ.get(name) or default


def read_secrets(inline: str | None, path: str | None) -> tuple[str, ...]:
    """Secrets from a comma-separated value and/or a file with one secret per line."""
    values: list[str] = []
    if inline:
        values += [part.strip() for part in inline.split(",")]
    if path:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                values.append(line)
    unique: list[str] = []
    for value in values:
        if value and value not in unique:
            unique.append(value)
    return tuple(unique)


def build_parser(environ: Mapping[str, str] = os.environ) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gateway",
        description="Execution integration HTTP gateway (RFC-0014I §5) over Kafka.",
    )
    kafka_settings.add_arguments(parser)
    parser.add_argument("--host", default=_env(environ, "GATEWAY_HOST", DEFAULT_HOST),
                        help="bind address (env GATEWAY_HOST; default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=int(_env(environ, "GATEWAY_PORT", str(DEFAULT_PORT))),
                        help="bind port (env GATEWAY_PORT; default 8080)")
    parser.add_argument("--application-id", default=_env(environ, "PROCESSOR_APPLICATION_ID", "execution-processor"),
                        help="the processor's application id, for default topic names (env PROCESSOR_APPLICATION_ID)")
    parser.add_argument("--instance-id", default=_env(environ, "GATEWAY_INSTANCE_ID", socket.gethostname()),
                        help="this instance's id, in Kafka client ids (env GATEWAY_INSTANCE_ID; default: host name)")
    parser.add_argument("--api-tokens-file", default=environ.get("GATEWAY_API_TOKENS_FILE"),
                        help="file of bearer tokens, one per line (env GATEWAY_API_TOKENS_FILE); "
                             "GATEWAY_API_TOKENS may also list tokens, comma-separated")
    parser.add_argument("--webhook-secrets-file", default=environ.get("GATEWAY_WEBHOOK_SECRETS_FILE"),
                        help="file of webhook HMAC secrets, one per line (env GATEWAY_WEBHOOK_SECRETS_FILE); "
                             "GATEWAY_WEBHOOK_SECRETS may also list them, comma-separated")
    parser.add_argument("--result-timeout", type=float,
                        default=float(_env(environ, "GATEWAY_RESULT_TIMEOUT_S", str(DEFAULT_RESULT_TIMEOUT_S))),
                        help="seconds a create or cancel waits for the processor before answering 202 "
                             "(env GATEWAY_RESULT_TIMEOUT_S; default 5)")
    parser.add_argument("--signature-tolerance", type=int,
                        default=int(_env(environ, "GATEWAY_SIGNATURE_TOLERANCE_S", str(DEFAULT_SIGNATURE_TOLERANCE_S))),
                        help="accepted clock difference of webhook signatures, seconds "
                             "(env GATEWAY_SIGNATURE_TOLERANCE_S; default 300)")
    parser.add_argument("--max-body-bytes", type=int,
                        default=int(_env(environ, "GATEWAY_MAX_BODY_BYTES", str(DEFAULT_MAX_BODY_BYTES))),
                        help="largest accepted request body (env GATEWAY_MAX_BODY_BYTES; default 1 MiB)")
    parser.add_argument("--log-level", default=_env(environ, "GATEWAY_LOG_LEVEL", "INFO"),
                        help="env GATEWAY_LOG_LEVEL")
    return parser


def load(argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ) -> GatewayConfig:
    args = build_parser(environ).parse_args(argv)
    # Secrets are deliberately not flags: a command line is visible to every local user.
    tokens = read_secrets(environ.get("GATEWAY_API_TOKENS"), args.api_tokens_file)
    if not tokens:
        raise SystemExit("no bearer token configured: set GATEWAY_API_TOKENS or GATEWAY_API_TOKENS_FILE")
    return GatewayConfig(
        kafka=kafka_settings.from_arguments(args, environ),
        topics=TopicNames.defaults(args.application_id, environ),
        application_id=args.application_id,
        instance_id=args.instance_id,
        host=args.host,
        port=args.port,
        api_tokens=tokens,
        webhook_secrets=read_secrets(environ.get("GATEWAY_WEBHOOK_SECRETS"), args.webhook_secrets_file),
        result_timeout_s=args.result_timeout,
        signature_tolerance_s=args.signature_tolerance,
        max_body_bytes=args.max_body_bytes,
        log_level=args.log_level,
    )
