"""Connection settings for confluent-kafka clients, from flags and the environment.

`KAFKA_BOOTSTRAP_SERVERS` names the cluster. Any other librdkafka property is passed through
from `KAFKA_CLIENT_<PROPERTY>` variables (upper case, dots as underscores), e.g.
`KAFKA_CLIENT_SECURITY_PROTOCOL=SASL_SSL`, `KAFKA_CLIENT_SASL_MECHANISM=SCRAM-SHA-512`,
`KAFKA_CLIENT_SASL_USERNAME=...`, `KAFKA_CLIENT_SASL_PASSWORD=...`,
`KAFKA_CLIENT_SSL_CA_LOCATION=/etc/ssl/ca.pem`; or from repeated `--kafka-config key=value`
flags, which win over the environment.

Precedence when a service builds a client (`KafkaSettings.client`): the service's defaults, then
what the operator set (which wins: `KAFKA_CLIENT_SESSION_TIMEOUT_MS=45000` gives 45000), then the
properties the service's guarantees depend on (`REQUIRED`: exactly-once, co-partitioning). An
operator value for one of those that differs from what the service needs is refused at start-up
with the reason (`ClientConfigError`), never silently overridden.
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


# Properties a service sets because a guarantee depends on them, with the reason an operator may
# not change them; `KafkaSettings.client` refuses a conflicting KAFKA_CLIENT_* / --kafka-config.
REQUIRED_WHY: Mapping[str, str] = {
    "isolation.level": "outputs of aborted transactions must never be read (exactly-once)",
    "enable.idempotence": "transactions need the idempotent producer (exactly-once)",
    "transactional.id": "it fences the instance's earlier incarnations (exactly-once)",
    "enable.auto.commit": "offsets are committed inside the transactions (exactly-once)",
    "enable.auto.offset.store": "offsets are committed inside the transactions (exactly-once)",
    "partitioner": "keys must land where the Java clients' murmur2 puts them (co-partitioning)",
    "partition.assignment.strategy": "partition p of every co-partitioned topic must go to one member",
    "group.id": "the application id names the consumer group",
    "group.instance.id": "it is the instance id (static membership)",
    "enable.partition.eof": "the processor learns that an input partition was read to its end from it (an "
                            "admission waits for its proposal's partition to be read)",
}


class ClientConfigError(ValueError):
    """An operator's client property conflicts with one a guarantee depends on."""


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str
    client_config: Mapping[str, str] = field(default_factory=dict, repr=False)  # may hold SASL secrets

    def base_config(self) -> ClientConfig:
        """Properties every client of the service starts from."""
        return {"bootstrap.servers": self.bootstrap_servers, **self.client_config}

    def client(self, defaults: Mapping[str, object], required: Mapping[str, object] | None = None) -> ClientConfig:
        """A client's configuration: the service's `defaults`, overridden by what the operator set,
        then the `required` properties (each must be in `REQUIRED_WHY`). Raises ClientConfigError
        naming the property and the reason if the operator set a required one to another value."""
        required = required or {}
        conflicts = []
        for name, value in required.items():
            if name not in REQUIRED_WHY:
                raise KeyError(f"{name} is not a protected property; add it to REQUIRED_WHY with its reason")
            given = self.client_config.get(name)
            if given is not None and str(given).lower() != str(value).lower():
                conflicts.append(f"{_variable(name)}={given!r} refused: {name} must be {value!r}, because "
                                 f"{REQUIRED_WHY[name]}")
        if conflicts:
            raise ClientConfigError("; ".join(conflicts))
        merged: dict[str, object] = {**defaults, **self.client_config, **required,
                                     "bootstrap.servers": self.bootstrap_servers}
        return merged  # type: ignore[return-value]

    def redacted(self) -> dict[str, object]:
        """The settings with secret values hidden, for logs."""
        return {
            name: ("***" if any(word in name.lower() for word in _SECRET_WORDS) else value)
            for name, value in self.base_config().items()
        }


def _variable(name: str) -> str:
    return f"{CLIENT_ENV_PREFIX}{name.upper().replace('.', '_')}"


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
