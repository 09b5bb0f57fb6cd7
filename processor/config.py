"""Processor configuration from flags and environment variables (flags win).

Every setting has a flag and a `PROCESSOR_*` variable; topic names have `TOPIC_*` variables
(e.g. `TOPIC_ORDER_EVENTS`). Kafka connection and SASL/SSL settings come from
`kafka_client.settings` (`KAFKA_BOOTSTRAP_SERVERS`, `KAFKA_CLIENT_*`).
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kafka_client import settings as kafka_settings
from kafka_client.settings import KafkaSettings
from wire.topics import TopicNames


@dataclass(frozen=True)
class ProcessorConfig:
    kafka: KafkaSettings
    application_id: str  # consumer group id, prefix of internal topics and transactional ids
    instance_id: str  # stable per instance: its transactional.id fences its own earlier incarnation
    state_dir: Path
    topics: TopicNames
    partitions: int  # for topics the processor creates when they do not exist
    commit_interval_ms: int
    batch_size: int
    http_host: str
    http_port: int  # 0 disables the ops HTTP server
    log_level: str
    on_handler_error: str = "dead-letter"  # what a handler bug does: "dead-letter" (and go on) or "stop"

    @property
    def transactional_id(self) -> str:
        return f"{self.application_id}-{self.instance_id}"


def _env(environ: Mapping[str, str], name: str, default: str) -> str:
    return environ.get(name) or default


def build_parser(environ: Mapping[str, str] = os.environ) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m processor",
        description="Execution integration processor: folds commands and OMS order events into execution state.",
    )
    kafka_settings.add_arguments(parser)
    parser.add_argument("--application-id", default=_env(environ, "PROCESSOR_APPLICATION_ID", "execution-processor"),
                        help="consumer group id and internal topic prefix (env PROCESSOR_APPLICATION_ID)")
    parser.add_argument("--instance-id", default=_env(environ, "PROCESSOR_INSTANCE_ID", socket.gethostname()),
                        help="stable id of this instance (env PROCESSOR_INSTANCE_ID; default: host name)")
    parser.add_argument("--state-dir", default=_env(environ, "PROCESSOR_STATE_DIR", "state"),
                        help="directory of the RocksDB state stores (env PROCESSOR_STATE_DIR)")
    parser.add_argument("--partitions", type=int, default=int(_env(environ, "PROCESSOR_PARTITIONS", "6")),
                        help="partition count of topics the processor creates (env PROCESSOR_PARTITIONS)")
    parser.add_argument("--commit-interval-ms", type=int,
                        default=int(_env(environ, "PROCESSOR_COMMIT_INTERVAL_MS", "100")),
                        help="longest a transaction stays open (env PROCESSOR_COMMIT_INTERVAL_MS)")
    parser.add_argument("--batch-size", type=int, default=int(_env(environ, "PROCESSOR_BATCH_SIZE", "500")),
                        help="records per consume call (env PROCESSOR_BATCH_SIZE)")
    parser.add_argument("--http-host", default=_env(environ, "PROCESSOR_HTTP_HOST", "127.0.0.1"),
                        help="address of /metrics, /healthz, /readyz (env PROCESSOR_HTTP_HOST)")
    parser.add_argument("--http-port", type=int, default=int(_env(environ, "PROCESSOR_HTTP_PORT", "9464")),
                        help="port of /metrics, /healthz, /readyz; 0 disables (env PROCESSOR_HTTP_PORT)")
    parser.add_argument("--log-level", default=_env(environ, "PROCESSOR_LOG_LEVEL", "INFO"),
                        help="DEBUG, INFO, WARNING or ERROR (env PROCESSOR_LOG_LEVEL)")
    parser.add_argument("--on-handler-error", choices=("dead-letter", "stop"),
                        default=_env(environ, "PROCESSOR_ON_HANDLER_ERROR", "dead-letter"),
                        help="what a bug in a record handler (an exception that is not bad input) does: "
                             "dead-letter the record with the error and go on, or stop the processor "
                             "(env PROCESSOR_ON_HANDLER_ERROR; default dead-letter)")
    return parser


def load(argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ) -> ProcessorConfig:
    args = build_parser(environ).parse_args(argv)
    return ProcessorConfig(
        kafka=kafka_settings.from_arguments(args, environ),
        application_id=args.application_id,
        instance_id=args.instance_id,
        state_dir=Path(args.state_dir),
        topics=TopicNames.defaults(args.application_id, environ),
        partitions=args.partitions,
        commit_interval_ms=args.commit_interval_ms,
        batch_size=args.batch_size,
        http_host=args.http_host,
        http_port=args.http_port,
        log_level=args.log_level,
        on_handler_error=args.on_handler_error,
    )
