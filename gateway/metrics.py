"""Prometheus metrics of the gateway: HTTP traffic per route and status, connections, and the
gateway's view of the RFC §11 metrics.

Every name starts with `gateway_`, so no series shares a name with the processor's: the RFC §11
`executions_created_total{status}` and `execution_latency_ms{stage=ack|fill}` are the
processor's (commands folded, orders acknowledged and filled); the gateway counts create
*calls* by their HTTP-level outcome as `gateway_executions_created_total{status}` and times
them, request received to processor answer, as `gateway_execution_latency_ms{stage="submit"}`.
Summing across jobs no longer double-counts.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_MS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "gateway_http_requests", "HTTP requests by route, method and status.", ["route", "method", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "gateway_http_request_duration_seconds", "HTTP request latency by route, method and status.",
            ["route", "method", "status"], buckets=_SECONDS, registry=r,
        )
        self.open_connections = Gauge(
            "gateway_open_connections", "Client connections open now.", registry=r,
        )
        self.connections_refused = Counter(
            "gateway_connections_refused", "Connections answered 503 and closed at once: the connection cap "
            "(GATEWAY_MAX_CONNECTIONS) was reached.", registry=r,
        )
        self.timeouts = Counter(
            "gateway_request_timeouts", "Connections closed because a request's headers (or the next request "
            "on a kept-alive connection) or its body did not arrive in time, by phase.", ["phase"], registry=r,
        )
        # RFC-0014I §11, the gateway's view
        self.executions_created = Counter(
            "gateway_executions_created", "Create calls by outcome (CREATED, REPLAYED, CONFLICT, NOT_FOUND, "
            "NOT_EXECUTABLE, INVALID, PENDING for a timeout, ...).", ["status"], registry=r,
        )
        self.execution_latency_ms = Histogram(
            "gateway_execution_latency_ms", "Milliseconds from a create call to the processor's answer (stage=submit).",
            ["stage"], buckets=_MS, registry=r,
        )
        # Commands, webhook, read model
        self.command_results = Counter(
            "gateway_command_results", "Processor answers to commands, by command type and outcome.",
            ["command", "outcome"], registry=r,
        )
        self.command_timeouts = Counter(
            "gateway_command_timeouts", "Commands not answered within the wait bound.", ["command"], registry=r,
        )
        self.publish_failures = Counter(
            "gateway_publish_failures", "Records Kafka did not accept, by topic kind.", ["topic"], registry=r,
        )
        self.webhook_events = Counter(
            "gateway_webhook_events", "Webhook calls by outcome (accepted, missing, malformed, stale, mismatch, "
            "unreadable, invalid, execution_mismatch, unknown_execution, unknown_ticket).", ["outcome"], registry=r,
        )
        self.read_model_executions = Gauge(
            "gateway_read_model_executions", "Executions held by the read model.", registry=r,
        )
        self.read_model_changes = Counter(
            "gateway_read_model_state_changes", "State changes consumed, by whether their summary was applied or "
            "dropped as not newer (their lifecycle rows are kept either way).", ["result"], registry=r,
        )
        self.read_model_snapshots = Counter(
            "gateway_read_model_snapshots", "execution-snapshots table rows consumed, by whether they were applied "
            "or dropped as not newer.", ["result"], registry=r,
        )
        self.read_model_rebuilds = Counter(
            "gateway_read_model_rebuilds", "Read-model stores built from the beginning of the topics at start-up: "
            "new (no store in the state directory) or foreign (another cluster or topics, a recreated topic, "
            "an unreadable store).", ["reason"], registry=r,
        )
        self.read_model_ready = Gauge(
            "gateway_read_model_ready", "1 once the read model has caught up with the state-change and snapshot "
            "topics.", registry=r,
        )
        self.pending_commands = Gauge(
            "gateway_pending_commands", "Commands waiting for the processor's answer.", registry=r,
        )
