"""The processor's topic layout: what it creates, and what must be co-partitioned.

Two subtopologies, each a set of co-partitioned input topics with one state store per
partition and one compacted changelog whose partition count matches its sources:

- proposals  (key proposal_id):  approved proposals, admission requests;
- executions (key execution_id): execution commands, admission decisions, order events.

The partition count of a subtopology comes from its first (externally owned) topic if it
exists, else from the configured default; everything else in it is created to match, and an
existing mismatch stops the processor at start-up.
"""

from __future__ import annotations

from confluent_kafka.admin import AdminClient

from kafka_client.topics import TopicSpec, check_copartitioned, ensure_topics, existing_partition_counts
from processor.config import ProcessorConfig
from processor.runtime.state_manager import Subtopology

_COMPACTED = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0", "segment.ms": "3600000"}
_DEAD_LETTER_RETENTION = {"retention.ms": str(30 * 24 * 3600 * 1000)}
# The stream of changes is the audit trail: each carries only what changed, so it is kept whole
# (never compacted: the latest change of an execution is not its state). Operators may bound it
# with retention.ms; the table below keeps every execution's latest summary either way.
_STATE_CHANGES = {"cleanup.policy": "delete", "retention.ms": "-1"}
# The table: the latest summary per execution (KTable convention: compacted, key = execution_id).
_SNAPSHOTS = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0", "segment.ms": "3600000"}


def subtopologies(config: ProcessorConfig) -> tuple[Subtopology, Subtopology]:
    t = config.topics
    return (
        Subtopology("proposals", (t.approved_proposals, t.admission_requests), t.proposals_changelog),
        Subtopology("executions", (t.execution_commands, t.admission_decisions, t.order_events), t.executions_changelog),
    )


def prepare_topics(admin: AdminClient, config: ProcessorConfig) -> list[str]:
    """Create what is missing; check co-partitioning. Returns the names created."""
    created: list[str] = []
    for sub in subtopologies(config):
        leader = sub.input_topics[0]
        counts = existing_partition_counts(admin, [leader])
        partitions = counts.get(leader, config.partitions)
        specs = [TopicSpec(name, partitions) for name in sub.input_topics]
        specs.append(TopicSpec(sub.changelog_topic, partitions, _COMPACTED))
        created += ensure_topics(admin, specs)
        check_copartitioned(admin, [*sub.input_topics, sub.changelog_topic])
    t = config.topics
    outputs = [
        TopicSpec(t.command_results, config.partitions),
        TopicSpec(t.trade_tickets, config.partitions),
        TopicSpec(t.execution_state_changes, config.partitions, _STATE_CHANGES),
        TopicSpec(t.execution_snapshots, config.partitions, _SNAPSHOTS),
        TopicSpec(t.dead_letters, config.partitions, _DEAD_LETTER_RETENTION),
    ]
    created += ensure_topics(admin, outputs)
    return sorted(created)
