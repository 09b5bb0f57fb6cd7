"""Prometheus metrics of the FIX adapter (served on /metrics with /healthz and /readyz)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class AdapterMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.session_state = Gauge(
            "fix_session_state", "FIX session state: 0 disconnected, 1 logon sent, 2 active, 3 logout sent.",
            ["counterparty"], registry=r)
        self.messages = Counter("fix_messages", "FIX messages by direction (in/out) and MsgType name.",
                                ["counterparty", "direction", "msg_type"], registry=r)
        self.resend_requests = Counter("fix_resend_requests", "ResendRequests sent (out) and answered (in).",
                                       ["counterparty", "direction"], registry=r)
        self.garbled = Counter("fix_garbled_messages", "Received messages dropped as garbled or malformed.",
                               ["counterparty"], registry=r)
        self.connects = Counter("fix_connect_attempts", "TCP connection attempts.", ["counterparty"], registry=r)
        self.reconciliations = Counter(
            "fix_reconciliations", "OrderStatusRequests sent, by trigger (reconnect, silence).",
            ["counterparty", "trigger"], registry=r)
        self.reconciled_events = Counter("fix_reconciled_events", "Order events published from status answers.",
                                         registry=r)
        self.orders_without_report = Gauge(
            "fix_orders_without_report", "Orders sent that no report has answered yet.", ["counterparty"], registry=r)
        self.duplicate_reports = Counter("fix_duplicate_reports", "Reports already acted on (same ExecID).", registry=r)
        self.stale_reports = Counter("fix_stale_reports", "Fill reports not above the CumQty already published.",
                                     registry=r)
        self.unknown_reports = Counter("fix_unknown_reports", "Reports about orders this adapter never sent.",
                                       registry=r)
        self.order_events = Counter("fix_order_events", "Order events published, by event type.", ["event_type"],
                                    registry=r)
        self.transactions = Counter("fix_transactions", "Kafka transactions committed.", registry=r)
        self.dead_letters = Counter("fix_dead_letters", "Instructions sent to the dead-letter topic.", registry=r)
