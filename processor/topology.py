"""The service's topology: which handler folds which input topic, and where bad input goes.

Implements the loop's `Topology` protocol. A record that cannot be decoded or applied (a
DecodeError, an invalid artifact, an immutable-version violation, an event for an unknown
execution) is published to the dead-letter topic, with its original bytes and the reason, in
the same transaction as everything else; the stream goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from confluent_kafka import Message

from processor.admission import ProposalAdmission
from processor.config import ProcessorConfig
from processor.executions import ExecutionFolding
from processor.loop import Subtopology
from processor.metrics import ProcessorMetrics
from processor.outputs import Outputs
from processor.state_store import PartitionStore
from processor.topics import subtopologies
from processor.transaction import ProcessingTransaction

log = logging.getLogger(__name__)

Handler = Callable[[Message, PartitionStore, ProcessingTransaction], None]


class ServiceTopology:
    def __init__(self, config: ProcessorConfig, metrics: ProcessorMetrics) -> None:
        self.subtopologies: tuple[Subtopology, ...] = subtopologies(config)
        self._metrics = metrics
        self._outputs = Outputs(config.topics, config.instance_id)
        self.admission = ProposalAdmission(self._outputs)
        self.executions = ExecutionFolding(self._outputs, metrics)
        t = config.topics
        self._handlers: dict[str, Handler] = {
            t.approved_proposals: self.admission.on_approved_proposal,
            t.admission_requests: self.admission.on_admission_request,
            t.execution_commands: self.executions.on_command,
            t.admission_decisions: self.executions.on_admission_decision,
            t.order_events: self.executions.on_order_event,
        }
        self._caches = (self.executions.executions, self.executions.admissions)

    def handle(self, message: Message, store: PartitionStore, txn: ProcessingTransaction) -> None:
        self._handlers[message.topic()](message, store, txn)

    def record_done(self) -> None:
        for cache in self._caches:
            cache.record_done()

    def record_failed(self) -> None:
        for cache in self._caches:
            cache.record_failed()

    def dead_letter(self, message: Message, error: BaseException, txn: ProcessingTransaction) -> None:
        error_type = type(error).__name__
        reason = str(error) or error_type
        self._metrics.dead_letters.labels(error_type).inc()
        log.warning("dead-lettered %s: %s", error_type, reason, extra={
            "topic": message.topic(), "partition": message.partition(), "offset": message.offset(),
        }, exc_info=not isinstance(error, (ValueError, LookupError)))
        self._outputs.dead_letter(txn, message, reason, error_type, datetime.now(UTC))

    def before_prepare(self, txn: ProcessingTransaction) -> None:
        for cache in self._caches:
            cache.flush(txn)

    def after_commit(self) -> None:
        for cache in self._caches:
            cache.committed()

    def after_abort(self) -> None:
        for cache in self._caches:
            cache.aborted()

    def stores_closed(self, stores: Iterable[PartitionStore]) -> None:
        stores = list(stores)
        for cache in self._caches:
            cache.forget(stores)
