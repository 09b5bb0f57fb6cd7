"""W3C trace context for every service: the OpenTelemetry SDK set up once per process, and
helpers that carry the context over HTTP and in Kafka record headers.

- `configure(service, exporter)` installs an SDK `TracerProvider` as the global one. Spans are
  always created (so a request without a `traceparent` starts a new trace whose ids reach the
  logs and the Kafka headers) but exported only when asked: `exporter` is `none` (the default),
  `console` (JSON lines on stdout, for a look) or `otlp` (OTLP over HTTP, the optional
  `opentelemetry-exporter-otlp-proto-http` package: `pip install '.[otlp]'`). The choice comes
  from a flag or the standard `OTEL_TRACES_EXPORTER` variable; every other standard variable
  (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`,
  `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SDK_DISABLED`, ...) is read by the SDK itself.
- Kafka: `kafka_headers()` gives the current context as `traceparent` / `tracestate` byte
  headers, `context_from_kafka()` reads them back; the gateway, the processor, the mock OMS
  and the FIX adapter use the same two functions, so a create's trace follows its commands,
  tickets, order events and state changes.
- HTTP: `context_from_http()` reads the request's `traceparent` / `tracestate`; a missing,
  malformed or repeated `traceparent` yields an empty context (a new trace), as W3C Trace
  Context asks.
- Logs: `TraceContextFilter` puts `trace_id` and `span_id` on every record written inside a
  span, or the `trace_id` of the Kafka record being handled (`handling_record`) where no span
  is made; `observability.json_logging` emits them beside `correlation_id`.

Only the W3C propagator is used (not the global one `OTEL_PROPAGATORS` configures): the Kafka
header names are part of the service's contract (docs/wire.md).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Span, SpanContext
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)

TRACEPARENT_HEADER = "traceparent"
TRACESTATE_HEADER = "tracestate"
EXPORTER_ENV = "OTEL_TRACES_EXPORTER"
EXPORTERS = ("none", "console", "otlp")

KafkaHeaders = list[tuple[str, bytes]]

_PROPAGATOR = TraceContextTextMapPropagator()
_configured: TracerProvider | None = None


class TracingConfigError(ValueError):
    """A tracing setting that cannot be honoured (unknown exporter, exporter package missing)."""


def exporter_from_env(environ: Mapping[str, str] = os.environ) -> str:
    """The exporter `OTEL_TRACES_EXPORTER` names; `none` when unset. Unlike the SDK's own default
    (`otlp`), export is off unless asked for."""
    value = (environ.get(EXPORTER_ENV) or "none").strip().lower()
    if value not in EXPORTERS:
        raise TracingConfigError(f"{EXPORTER_ENV}: must be one of {', '.join(EXPORTERS)} (got {value!r})")
    return value


def _exporter(name: str) -> SpanExporter | None:
    if name == "none":
        return None
    if name == "console":
        return ConsoleSpanExporter()
    if name == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise TracingConfigError(
                "the otlp exporter needs opentelemetry-exporter-otlp-proto-http: pip install '.[otlp]'") from None
        otlp: SpanExporter = OTLPSpanExporter()
        return otlp
    raise TracingConfigError(f"unknown span exporter {name!r}; one of {', '.join(EXPORTERS)}")


def configure(service: str, exporter: str = "none", environ: Mapping[str, str] = os.environ) -> TracerProvider:
    """Install the SDK tracer provider of this process (once; later calls return the first).
    `OTEL_SERVICE_NAME`, when set, names the service instead of `service`."""
    global _configured
    if _configured is not None:
        return _configured
    span_exporter = _exporter(exporter)
    attributes = {} if environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service}
    provider = TracerProvider(resource=Resource.create(attributes))
    if span_exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(span_exporter))
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):  # someone else installed an SDK provider first: use it
        _configured = current
        return current
    trace.set_tracer_provider(provider)
    _configured = provider
    log.debug("tracing configured: service %s, exporter %s", service, exporter)
    return provider


def shutdown() -> None:
    """Flush and stop the exporter (at process exit)."""
    if _configured is not None:
        _configured.shutdown()


def get_tracer(name: str) -> trace.Tracer:
    """A tracer of the process's provider; installs the default one (no exporter) if none is yet,
    so code run without `configure` (tests, embedded use) still starts real traces."""
    if _configured is None and not isinstance(trace.get_tracer_provider(), TracerProvider):
        configure(name.split(".", 1)[0])
    return trace.get_tracer(name)


# -- Kafka headers --------------------------------------------------------------------------------


class _KafkaSetter(Setter[KafkaHeaders]):
    def set(self, carrier: KafkaHeaders, key: str, value: str) -> None:
        carrier.append((key, value.encode("ascii")))


class _KafkaGetter(Getter[Sequence[tuple[str, Any]]]):
    def get(self, carrier: Sequence[tuple[str, Any]], key: str) -> list[str] | None:
        values = [_text(value) for name, value in carrier if name == key]
        found = [value for value in values if value is not None]
        if key == TRACEPARENT_HEADER and len(found) != 1:
            return None  # repeated or undecodable: no parent
        return found or None

    def keys(self, carrier: Sequence[tuple[str, Any]]) -> list[str]:
        return [name for name, _ in carrier]


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None


_KAFKA_SETTER = _KafkaSetter()
_KAFKA_GETTER = _KafkaGetter()


def kafka_headers(context: Context | None = None) -> KafkaHeaders:
    """`traceparent` (and `tracestate` when there is one) of `context` (default: the current
    one) as Kafka record headers; empty when there is no valid span."""
    headers: KafkaHeaders = []
    _PROPAGATOR.inject(headers, context=context, setter=_KAFKA_SETTER)
    return headers


def passed_on(headers: object) -> KafkaHeaders:
    """A record's W3C trace context headers (`traceparent`, `tracestate`) to copy as they are onto
    what the record causes: no span is made per record, yet the trace id reaches every output, at no
    cost when no exporter is configured. `headers` is confluent-kafka's `message.headers()`."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers if isinstance(headers, list) else ()
    return [(name, value) for name, value in pairs
            if name in (TRACEPARENT_HEADER, TRACESTATE_HEADER) and isinstance(value, bytes) and value]


def context_from_kafka(headers: Iterable[tuple[str, Any]] | None) -> Context:
    """The trace context carried by a record's headers (confluent-kafka's `message.headers()`);
    an empty context (no parent) when there is none or it is malformed."""
    return _PROPAGATOR.extract(list(headers or ()), getter=_KAFKA_GETTER)


def span_context_from_kafka(headers: Iterable[tuple[str, Any]] | None) -> SpanContext | None:
    """The remote span a record's headers name, or None."""
    span_context = trace.get_current_span(context_from_kafka(headers)).get_span_context()
    return span_context if span_context.is_valid else None


# -- HTTP headers ---------------------------------------------------------------------------------


class _HttpGetter(Getter[Any]):
    """For multi-dicts (aiohttp's `request.headers`): repeated `traceparent` headers are invalid."""

    def get(self, carrier: Any, key: str) -> list[str] | None:
        values = list(carrier.getall(key, ()))
        if key == TRACEPARENT_HEADER and len(values) != 1:
            return None
        return values or None

    def keys(self, carrier: Any) -> list[str]:
        return list(carrier.keys())


_HTTP_GETTER = _HttpGetter()


def context_from_http(headers: Any) -> Context:
    """The trace context of an HTTP request's `traceparent` / `tracestate` (a multi-dict with
    `getall`); an empty context when absent, malformed or repeated."""
    return _PROPAGATOR.extract(headers, getter=_HTTP_GETTER)


def has_remote_parent(context: Context) -> bool:
    return trace.get_current_span(context).get_span_context().is_valid


# -- logs -----------------------------------------------------------------------------------------


def trace_ids(span: Span | None = None) -> tuple[str, str] | None:
    """(trace_id, span_id) in W3C hex of `span` (default: the current one), or None."""
    span_context = (span or trace.get_current_span()).get_span_context()
    if not span_context.is_valid:
        return None
    return trace.format_trace_id(span_context.trace_id), trace.format_span_id(span_context.span_id)


_RECORD_TRACE_ID: ContextVar[str | None] = ContextVar("record_trace_id", default=None)


def handling_record(headers: KafkaHeaders) -> None:
    """The trace (W3C `traceparent` among `headers`) of the Kafka record this thread now handles,
    for the log lines written while no span is current; `[]` when it is done."""
    trace_id = None
    for name, value in headers:
        if name == TRACEPARENT_HEADER:
            parts = value.split(b"-")
            if len(parts) == 4 and len(parts[1]) == 32:
                trace_id = parts[1].decode("ascii", "replace")
    _RECORD_TRACE_ID.set(trace_id)


class TraceContextFilter(logging.Filter):
    """Adds `trace_id` and `span_id` of the current span to records that carry none, or the
    `trace_id` of the Kafka record being handled (`handling_record`) when no span is current."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "trace_id", None) is None:
            ids = trace_ids()
            if ids is not None:
                record.trace_id, record.span_id = ids
            else:
                record.trace_id = _RECORD_TRACE_ID.get()
        return True

