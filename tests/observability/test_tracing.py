"""observability.tracing: W3C trace context in Kafka headers and HTTP headers, the log filter,
the exporter choice."""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from observability import tracing
from observability.json_logging import JsonFormatter

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SPAN_ID = 0x00F067AA0BA902B7
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def remote_context(trace_id: int = TRACE_ID, span_id: int = SPAN_ID, sampled: bool = True) -> object:
    span = NonRecordingSpan(SpanContext(trace_id, span_id, is_remote=True,
                                        trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else 0)))
    return trace.set_span_in_context(span)


def test_kafka_headers_of_a_span_are_its_traceparent_as_bytes() -> None:
    headers = tracing.kafka_headers(remote_context())  # type: ignore[arg-type]
    assert headers == [("traceparent", TRACEPARENT.encode())]


def test_kafka_headers_without_a_span_are_empty() -> None:
    assert tracing.kafka_headers() == []


@given(st.integers(1, 2**128 - 1), st.integers(1, 2**64 - 1), st.booleans())
def test_kafka_headers_round_trip_any_valid_span_context(trace_id: int, span_id: int, sampled: bool) -> None:
    headers = tracing.kafka_headers(remote_context(trace_id, span_id, sampled))  # type: ignore[arg-type]
    found = tracing.span_context_from_kafka([("correlation_id", b"c-1"), *headers])
    assert found is not None
    assert (found.trace_id, found.span_id, found.trace_flags.sampled) == (trace_id, span_id, sampled)


@pytest.mark.parametrize("headers", [
    None, [], [("correlation_id", b"c")], [("traceparent", b"garbage")],
    [("traceparent", b"00-00000000000000000000000000000000-00f067aa0ba902b7-01")],
    [("traceparent", TRACEPARENT.encode()), ("traceparent", TRACEPARENT.encode())],
    [("traceparent", b"\xff\xfe")], [("traceparent", None)],
])
def test_kafka_headers_missing_malformed_or_repeated_give_no_parent(headers: list[tuple[str, bytes]] | None) -> None:
    assert tracing.span_context_from_kafka(headers) is None


def test_tracestate_travels_with_the_traceparent() -> None:
    headers = [("traceparent", TRACEPARENT.encode()), ("tracestate", b"vendor=abc")]
    context = tracing.context_from_kafka(headers)
    assert tracing.kafka_headers(context) == headers


def test_http_traceparent_is_read_once_and_refused_when_repeated() -> None:
    single = tracing.context_from_http(CIMultiDict([("Traceparent", TRACEPARENT)]))
    repeated = tracing.context_from_http(CIMultiDict([("traceparent", TRACEPARENT), ("traceparent", TRACEPARENT)]))
    assert tracing.has_remote_parent(single)
    assert trace.get_current_span(single).get_span_context().trace_id == TRACE_ID
    assert not tracing.has_remote_parent(repeated)
    assert not tracing.has_remote_parent(tracing.context_from_http(CIMultiDict()))


def test_spans_of_the_default_provider_start_new_traces_with_real_ids() -> None:
    tracer = tracing.get_tracer("tests.tracing")
    with tracer.start_as_current_span("one") as first:
        ids = tracing.trace_ids()
        headers = tracing.kafka_headers()
    with tracer.start_as_current_span("two"):
        other = tracing.trace_ids()
    assert ids is not None and other is not None and ids[0] != other[0]
    assert ids == tracing.trace_ids(first)
    [(name, value)] = headers
    assert name == "traceparent" and value.startswith(f"00-{ids[0]}-{ids[1]}-".encode())


def test_log_lines_inside_a_span_carry_trace_and_span_ids_beside_the_correlation_id() -> None:
    tracer = tracing.get_tracer("tests.tracing")
    formatter = JsonFormatter("svc")
    log_filter = tracing.TraceContextFilter()
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "inside", (), None)
    record.correlation_id = "corr-9"
    with tracer.start_as_current_span("work"):
        log_filter.filter(record)
        ids = tracing.trace_ids()
    outside = logging.LogRecord("x", logging.INFO, __file__, 1, "outside", (), None)
    log_filter.filter(outside)
    line = json.loads(formatter.format(record))
    assert ids is not None
    assert (line["correlation_id"], line["trace_id"], line["span_id"]) == ("corr-9", *ids)
    assert "trace_id" not in json.loads(formatter.format(outside))


def test_log_lines_while_a_kafka_record_is_handled_without_a_span_carry_its_trace_id() -> None:
    formatter = JsonFormatter("svc")
    log_filter = tracing.TraceContextFilter()

    def line() -> dict[str, object]:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "folding", (), None)
        log_filter.filter(record)
        return json.loads(formatter.format(record))

    tracing.handling_record([("tracestate", b"k=v"), ("traceparent", TRACEPARENT.encode())])
    during = line()
    tracing.handling_record([("traceparent", b"not-a-traceparent")])
    malformed = line()
    tracing.handling_record([])
    after = line()
    assert during["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736" and "span_id" not in during
    assert "trace_id" not in malformed and "trace_id" not in after


@pytest.mark.parametrize(("value", "expected"), [(None, "none"), ("", "none"), ("none", "none"),
                                                 ("console", "console"), ("OTLP", "otlp")])
def test_exporter_is_off_unless_otel_traces_exporter_names_one(value: str | None, expected: str) -> None:
    assert tracing.exporter_from_env({} if value is None else {"OTEL_TRACES_EXPORTER": value}) == expected


def test_unknown_exporter_is_a_config_error_naming_the_variable() -> None:
    with pytest.raises(tracing.TracingConfigError, match="OTEL_TRACES_EXPORTER"):
        tracing.exporter_from_env({"OTEL_TRACES_EXPORTER": "jaeger"})
