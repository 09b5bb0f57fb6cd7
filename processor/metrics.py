"""Prometheus metrics of the processor: the RFC §11 names plus what operators of a stream
processor watch (lag, batch size, commit latency, restore progress, dead letters)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS_MS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 60_000, 300_000)


class ProcessorMetrics:
    """One instance per processor; its registry is what /metrics serves."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # RFC-0014I §11
        self.executions_created = Counter(
            "executions_created", "Execution create commands by outcome.", ["status"], registry=r
        )
        self.tickets_submitted = Counter(
            "tickets_submitted", "Tickets released to the OMS, by ticket type.", ["type"], registry=r
        )
        self.tickets_rejected = Counter(
            "tickets_rejected", "Tickets the OMS rejected, by reason.", ["reason"], registry=r
        )
        self.execution_latency_ms = Histogram(
            "execution_latency_ms",
            "Milliseconds from a ticket's release to its acknowledgement or fill, by stage.",
            ["stage"],
            buckets=_LATENCY_BUCKETS_MS,
            registry=r,
        )
        # Stream processing
        self.records_processed = Counter(
            "processor_records", "Input records processed, by topic.", ["topic"], registry=r
        )
        self.dead_letters = Counter(
            "processor_dead_letters", "Input records sent to the dead-letter topic, by reason.", ["reason"], registry=r
        )
        self.anomalies = Counter(
            "processor_anomalies", "Order events recorded as anomalies in an execution's log.", ["reason"], registry=r
        )
        self.batch_size = Histogram(
            "processor_batch_records",
            "Input records per transaction.",
            buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000),
            registry=r,
        )
        self.commit_latency_ms = Histogram(
            "processor_commit_latency_ms",
            "Milliseconds to prepare and commit one transaction.",
            buckets=_LATENCY_BUCKETS_MS,
            registry=r,
        )
        self.transactions_aborted = Counter(
            "processor_transactions_aborted", "Transactions aborted and their inputs reprocessed.", registry=r
        )
        self.consumer_lag = Gauge(
            "processor_consumer_lag", "Records behind the end of each assigned input partition.",
            ["topic", "partition"], registry=r,
        )
        self.restore_remaining = Gauge(
            "processor_restore_remaining_records", "Changelog records left to restore, by store.",
            ["store", "partition"], registry=r,
        )
        self.restored_records = Counter(
            "processor_restored_records", "Changelog records restored into local stores.", ["store"], registry=r
        )
        self.misrouted = Counter(
            "processor_misrouted_records", "Keyed inputs read from a partition their key does not belong to "
            "(produced with another partitioner than murmur2), dead-lettered.", ["topic"], registry=r,
        )
        self.cache_bytes = Gauge(
            "processor_state_cache_bytes", "Decoded state values cached in memory (encoded size), by store and "
            "partition.", ["store", "partition"], registry=r,
        )
        self.broker_unavailable_seconds = Gauge(
            "processor_broker_unavailable_seconds", "How long the processor has been unable to complete a "
            "transaction with the broker (0 when it can).", registry=r,
        )
        self.admission_waits = Counter(
            "processor_admission_waits", "Admission requests that waited for their proposal's partition to be "
            "read (docs/design.md): outcome WAITING when one begins, then its decision's outcome.", ["outcome"],
            registry=r,
        )
        self.assigned_partitions = Gauge(
            "processor_assigned_partitions", "Input partitions assigned to this instance.", registry=r
        )
