"""Connection settings for confluent-kafka clients, from flags and the environment.

`KAFKA_BOOTSTRAP_SERVERS` names the cluster. Any other librdkafka property is passed through
from `KAFKA_CLIENT_<PROPERTY>` variables (upper case, dots as underscores), e.g.
`KAFKA_CLIENT_SECURITY_PROTOCOL=SASL_SSL`, `KAFKA_CLIENT_SASL_MECHANISM=SCRAM-SHA-512`,
`KAFKA_CLIENT_SASL_USERNAME=...`, `KAFKA_CLIENT_SASL_PASSWORD=...`,
`KAFKA_CLIENT_SSL_CA_LOCATION=/etc/ssl/ca.pem`; or from repeated `--kafka-config key=value`
flags, which win over the environment.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"
CLIENT_ENV_PREFIX = "KAFKA_CLIENT_"
# A librdkafka configuration, as confluent-kafka's clients take it.
ClientConfig = dict[str, str | int | float | bool]
# Never logged: values of properties whose names contain these words.
_SECRET_WORDS = ("password", "secret", "key", "token", "jaas")


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str
    client_config: Mapping[str, str] = field(default_factory=dict, repr=False)  # may hold SASL secrets

    def base_config(self) -> ClientConfig:
        """Properties every client of the service starts from."""
        return {"bootstrap.servers": self.bootstrap_servers, **self.client_config}

    def redacted(self) -> dict[str, object]:
        """The settings with secret values hidden, for logs."""
        return {
            name: ("***" if any(word in name.lower() for word in _SECRET_WORDS) else value)
            for name, value in self.base_config().items()
        }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Kafka connection")
    group.add_argument(
        "--bootstrap-servers",
        default=None,
        help=f"host:port list of the Kafka cluster (env {BOOTSTRAP_ENV})",
    )
    group.add_argument(
        "--kafka-config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"extra librdkafka property, e.g. security.protocol=SASL_SSL (env {CLIENT_ENV_PREFIX}<KEY>)",
    )


def from_arguments(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> KafkaSettings:
    bootstrap = args.bootstrap_servers or environ.get(BOOTSTRAP_ENV, "")
    if not bootstrap:
        raise SystemExit(f"Kafka bootstrap servers are required: --bootstrap-servers or {BOOTSTRAP_ENV}")
    return KafkaSettings(bootstrap, client_config_from(environ, args.kafka_config))


def client_config_from(environ: Mapping[str, str], overrides: Sequence[str] = ()) -> dict[str, str]:
    config = {
        name[len(CLIENT_ENV_PREFIX):].lower().replace("_", "."): value
        for name, value in environ.items()
        if name.startswith(CLIENT_ENV_PREFIX) and value
    }
    for item in overrides:
        key, separator, value = item.partition("=")
        if not separator or not key.strip():
            raise SystemExit(f"--kafka-config expects KEY=VALUE, got {item!r}")
        config[key.strip()] = value
    return config
