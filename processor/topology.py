"""The service's topology: which processor folds which subtopology, and what counts as bad input.

Two subtopologies (see `processor.topics`): proposals (approved proposals, admission requests)
and executions (commands, admission decisions, order events). Each task of a subtopology gets
its own processor (`ProposalsProcessor`, `ExecutionsProcessor`), built when the task starts: its
stores, codecs and caches belong to that task.

A record that cannot be decoded or applied (`BAD_INPUT`: a DecodeError, an invalid artifact, an
immutable-version violation, an event for an unknown execution, an invalid record) is published
to the dead-letter topic with its original bytes and the reason, in the same transaction as
everything else, and the stream goes on. Any other exception escaping a handler is a bug: the
error policy (`--on-handler-error`) decides whether it is dead-lettered too or stops the processor.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError

from execution_domain import ArtifactInvalid, ArtifactNotExecutable
from observability import tracing
from processor.admission import ImmutableVersionViolation, ProposalsProcessor
from processor.config import ProcessorConfig
from processor.executions import ExecutionsProcessor, UnknownExecution
from processor.metrics import ProcessorMetrics
from processor.outputs import DeadLetters
from processor.runtime.state_manager import Subtopology
from processor.runtime.store import PartitionStore
from processor.runtime.task import ErrorPolicy, InputPositions, Task, TaskContext, TaskId, TaskProcessor
from processor.topics import subtopologies
from wire.errors import DecodeError, RecordError
from wire.formats import WireFormats

BAD_INPUT: tuple[type[BaseException], ...] = (
    DecodeError,  # not a record of the topic's schema
    RecordError,  # decodes, but is not a valid record (e.g. a command whose payload does not match its type)
    ValidationError,  # a value the schema cannot rule out (e.g. a negative slippage)
    ArtifactInvalid,
    ArtifactNotExecutable,
    ImmutableVersionViolation,
    UnknownExecution,
)


class ServiceTopology:
    def __init__(self, config: ProcessorConfig, metrics: ProcessorMetrics, wire_formats: WireFormats) -> None:
        self.subtopologies: tuple[Subtopology, ...] = subtopologies(config)
        self._config = config
        self._metrics = metrics
        self._formats = wire_formats
        self._dead_letters = DeadLetters(config.topics.dead_letters, config.instance_id, metrics,
                                         wire_formats.value_codec("dead-letters", config.topics.dead_letters),
                                         config.dead_letter_value_limit)
        self._error_policy = ErrorPolicy(config.on_handler_error)
        # A span per input record only when spans are exported (docs/design.md "Observability").
        self._tracer = None if config.trace_exporter == "none" else tracing.get_tracer("processor")

    def build_task(self, task_id: TaskId, store: PartitionStore, partitions: int, *,
                   inputs: InputPositions | None = None) -> Task:
        return Task(task_id, store, self._processor_for(task_id.subtopology), dead_letters=self._dead_letters,
                    bad_input=BAD_INPUT, error_policy=self._error_policy, partitions=partitions,
                    cache_bytes=self._config.cache_mb * 1024 * 1024,
                    on_misrouted=lambda topic: self._metrics.misrouted.labels(topic).inc(), tracer=self._tracer,
                    inputs=inputs)

    def _processor_for(self, subtopology: str) -> Callable[[TaskContext], TaskProcessor]:
        topics, metrics, wire_formats = self._config.topics, self._metrics, self._formats
        max_tickets = self._config.max_tickets

        def proposals(context: TaskContext) -> TaskProcessor:
            return ProposalsProcessor(context, topics, wire_formats.topic_codecs(topics), max_tickets=max_tickets,
                                      metrics=metrics)

        def executions(context: TaskContext) -> TaskProcessor:
            return ExecutionsProcessor(context, topics, metrics, wire_formats.topic_codecs(topics))

        return {"proposals": proposals, "executions": executions}[subtopology]
