"""Create the topics a service needs, with their configs, and check the ones that exist.

Co-partitioned topics (those whose partition p must land on the same instance) are checked to
have the same partition count: a mismatch would silently break per-key guarantees, so it is
an error at start-up, not a warning.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

# NewTopic is defined (and typed) in confluent_kafka.cimpl; confluent_kafka.admin imports it without
# re-exporting it in its stubs. Imported from here by the rest of the code (`as`: an explicit re-export).
from confluent_kafka.cimpl import NewTopic as NewTopic


class TopicLayoutError(RuntimeError):
    """Existing topics cannot serve the service as configured."""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: Mapping[str, str] = field(default_factory=dict)
    replication_factor: int = -1  # the broker's default.replication.factor


def existing_partition_counts(admin: AdminClient, names: Sequence[str], timeout_s: float = 30) -> dict[str, int]:
    metadata = admin.list_topics(timeout=timeout_s)
    return {name: len(metadata.topics[name].partitions) for name in names if name in metadata.topics
            and metadata.topics[name].error is None}


def ensure_topics(admin: AdminClient, specs: Sequence[TopicSpec], timeout_s: float = 30) -> list[str]:
    """Create the missing topics; return the names created."""
    existing = existing_partition_counts(admin, [spec.name for spec in specs], timeout_s)
    missing = [spec for spec in specs if spec.name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [
            NewTopic(spec.name, num_partitions=spec.partitions, replication_factor=spec.replication_factor,
                     config=dict(spec.config))
            for spec in missing
        ],
        operation_timeout=timeout_s,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
            created.append(name)
        except KafkaException as error:
            # Another instance created it first: fine, as long as the layout checks pass.
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    _wait_visible(admin, [spec.name for spec in missing], timeout_s)
    return sorted(created)


def _wait_visible(admin: AdminClient, names: Sequence[str], timeout_s: float) -> None:
    """Creation returns before every broker's metadata shows the topic; wait until it does."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if len(existing_partition_counts(admin, names, timeout_s)) == len(names):
            return
        time.sleep(0.1)
    raise TopicLayoutError(f"created topics did not appear in metadata: {', '.join(names)}")


def check_copartitioned(admin: AdminClient, names: Sequence[str], timeout_s: float = 30) -> int:
    """The common partition count of topics that must be co-partitioned."""
    counts = existing_partition_counts(admin, names, timeout_s)
    missing = [name for name in names if name not in counts]
    if missing:
        raise TopicLayoutError(f"topics do not exist: {', '.join(missing)}")
    if len(set(counts.values())) != 1:
        described = ", ".join(f"{name}={count}" for name, count in sorted(counts.items()))
        raise TopicLayoutError(f"co-partitioned topics need equal partition counts, found {described}")
    return next(iter(counts.values()))
