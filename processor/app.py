"""Assembles one processor instance: Kafka clients, topics, topology, loop and ops endpoints."""

from __future__ import annotations

import logging
import threading
import time

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from kafka_client.settings import ClientConfig
from observability.ops_server import OpsServer
from processor.config import ProcessorConfig
from processor.metrics import ProcessorMetrics
from processor.runtime.loop import LoopSettings, StreamLoop
from processor.runtime.positions import ReadPositions
from processor.runtime.restore import restore_consumer_config, written_end_consumer_config
from processor.runtime.state_manager import StateManager
from processor.runtime.store import StateDirLock
from processor.topics import prepare_topics
from processor.topology import ServiceTopology
from wire import formats

log = logging.getLogger(__name__)

_STALL_S = 60.0  # a loop that has not come round for this long is not alive


# librdkafka's own log lines go through the service's JSON logger (not straight to stderr).
LIBRDKAFKA_LOG = logging.getLogger("librdkafka")


def consumer_config(config: ProcessorConfig) -> ClientConfig:
    required: dict[str, object] = {
        "group.id": config.application_id,
        "enable.auto.commit": False,  # offsets are committed inside the transactions
        "enable.auto.offset.store": False,
        "isolation.level": "read_committed",
        # Range gives partition p of equally partitioned topics to one member: co-partitioning.
        "partition.assignment.strategy": "range",
        # An event when a partition is read to its end: how the loop knows a partition with nothing
        # new was read (processor.runtime.positions).
        "enable.partition.eof": True,
    }
    if config.static_membership:
        # A restarted instance rejoins as the same member and gets its partitions back at once, without
        # a rebalance (KIP-345); the trade-off: see docs/design.md, "Failover and static membership".
        required["group.instance.id"] = config.instance_id
    return {**config.kafka.client({
        "client.id": f"{config.application_id}-{config.instance_id}",
        "auto.offset.reset": "earliest",
        "session.timeout.ms": config.session_timeout_ms,
        "heartbeat.interval.ms": min(3_000, config.session_timeout_ms // 10),
        "max.poll.interval.ms": 300_000,
    }, required), "logger": LIBRDKAFKA_LOG}  # type: ignore[dict-item]


def producer_config(config: ProcessorConfig) -> ClientConfig:
    return {**config.kafka.client({
        "client.id": f"{config.application_id}-{config.instance_id}",
        "transaction.timeout.ms": 10_000,
        "linger.ms": 5,
        "compression.type": "lz4",
    }, {
        # Stable per instance: a restarted instance fences (and aborts) its earlier incarnation's
        # open transaction at once instead of waiting for it to time out.
        "transactional.id": config.transactional_id,
        "enable.idempotence": True,
        # Java clients' partitioner, so that keys land where other producers put them.
        "partitioner": "murmur2_random",
    }), "logger": LIBRDKAFKA_LOG}  # type: ignore[dict-item]


def admin_config(config: ProcessorConfig) -> ClientConfig:
    return {**config.kafka.client({"client.id": f"{config.application_id}-{config.instance_id}-admin"}),
            "logger": LIBRDKAFKA_LOG}  # type: ignore[dict-item]


def written_topics(config: ProcessorConfig) -> dict[str, str]:
    """Topic kind -> name of every topic the processor writes records of a wire schema to."""
    t = config.topics
    return {
        "command-results": t.command_results, "trade-tickets": t.trade_tickets,
        "execution-state-changes": t.execution_state_changes, "execution-snapshots": t.execution_snapshots,
        "dead-letters": t.dead_letters, "admission-requests": t.admission_requests,
        "admission-decisions": t.admission_decisions,
    }


class ProcessorApp:
    def __init__(self, config: ProcessorConfig) -> None:
        self.config = config
        self.metrics = ProcessorMetrics()
        self.wire_formats = formats.from_environment()
        self.topology = ServiceTopology(config, self.metrics, self.wire_formats)
        self.loop: StreamLoop | None = None
        self.state: StateManager | None = None
        self._stop = threading.Event()
        self._ops: OpsServer | None = None

    def request_stop(self) -> None:
        self._stop.set()

    def live(self) -> tuple[bool, str]:
        """Alive while the loop comes round and transactions complete (a broker away for over 30 s
        fails it: the process is stuck, not progressing)."""
        if self.loop is None:
            return True, "starting"
        stalled_for = time.monotonic() - self.loop.last_loop_at
        if stalled_for >= _STALL_S:
            return False, f"loop last ran {stalled_for:.1f}s ago"
        if not self.loop.healthy:
            return False, "transactions have been failing for over 30s (broker unavailable?)"
        return True, f"loop last ran {stalled_for:.1f}s ago"

    def ready(self) -> tuple[bool, str]:
        """Ready once assigned partitions are restored and being processed, and transactions complete."""
        if self.loop is None or not self.loop.assignment_ready:
            return False, "restoring or waiting for partitions"
        if self.loop.unavailable_since is not None:
            return False, "waiting for the broker: transactions are failing"
        return True, "processing"

    def run(self) -> None:
        config = self.config
        log.info("starting processor %s (%s)", config.instance_id, config.kafka.redacted())
        # One owner per state directory, before any store opens (a second instance fails here).
        self._lock = StateDirLock(config.state_dir, {"instance_id": config.instance_id,
                                                      "application_id": config.application_id})
        try:
            self._run(config)
        finally:
            self._lock.release()

    def _run(self, config: ProcessorConfig) -> None:
        created = prepare_topics(AdminClient(admin_config(config)), config)
        if created:
            log.info("created topics: %s", ", ".join(created))
        registered = self.wire_formats.register_schemas(written_topics(config))
        if registered:
            log.info("schemas registered (%s): %s", self.wire_formats.describe(), registered)
        if config.http_port:
            self._ops = OpsServer(self.metrics.registry, self.live, self.ready, config.http_host, config.http_port).start()
            log.info("ops endpoints on http://%s:%d (/metrics /healthz /readyz)", config.http_host, self._ops.port)
        producer = Producer(producer_config(config))
        producer.init_transactions(30)
        restore_consumer = Consumer({**restore_consumer_config(config.kafka.base_config()), "logger": LIBRDKAFKA_LOG})
        watermark_consumer = Consumer({**written_end_consumer_config(config.kafka.base_config()),
                                       "logger": LIBRDKAFKA_LOG})
        # How far each input partition was read, and where it ends (its high watermark: after every
        # record written so far, committed or not yet): admissions wait on it (processor.admission).
        positions = ReadPositions(lambda tp: watermark_consumer.get_watermark_offsets(tp, timeout=2, cached=False)[1])
        self.state = StateManager(
            self.topology.subtopologies,
            config.state_dir,
            lambda task_id, store, partitions: self.topology.build_task(task_id, store, partitions, inputs=positions),
            restore_consumer=restore_consumer,
            changelog_written_end=lambda tp: watermark_consumer.get_watermark_offsets(tp, timeout=30, cached=False)[1],
            metrics=self.metrics,
        )
        self.loop = StreamLoop(
            consumer=Consumer(consumer_config(config)),
            producer=producer,
            state=self.state,
            # Every transactional call waits less than the broker's transaction timeout (10 s), so a
            # transaction the broker cannot finish is aborted (or its producer replaced), never left hanging.
            settings=LoopSettings(batch_size=config.batch_size, commit_interval_s=config.commit_interval_ms / 1000,
                                  transaction_timeout_s=8.0),
            metrics=self.metrics,
            new_producer=lambda: Producer(producer_config(config)),
            positions=positions,
        )
        del producer  # the loop owns the clients from here
        try:
            self.loop.run(self._stop.is_set)
        finally:
            restore_consumer.close()
            watermark_consumer.close()
            if self._ops is not None:
                self._ops.stop()
            log.info("processor %s stopped", config.instance_id)
