"""Shared pieces of the FIX adapter's integration tests: the adapter as a process on a harness's
topics, a reader of what it publishes, and the Executor's address and metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from fix_adapter.launch import AdapterProcess, CounterpartyAddress, metric_values, start_adapter
from local_fix.executor import LocalFixExecutor
from local_kafka.broker import free_loopback_port
from testkit.fix_acceptor import ScriptedFixAcceptor
from testkit.processor import ProcessorHarness, TopicReader, wait_until
from wire.topics import TopicNames


class FixRig:
    """One test's adapter processes (same adapter id across restarts) and a reader of order-events."""

    def __init__(self, harness: ProcessorHarness, tmp_path: Path) -> None:
        self.harness = harness
        self.tmp_path = tmp_path
        self.adapter_id = f"{harness.application_id}-fix"
        self.topic_env = {f"TOPIC_{f.name.upper()}": getattr(harness.topics, f.name) for f in fields(TopicNames)}
        self.events = TopicReader(harness.bootstrap, {harness.topics.order_events: "OrderEvent"})
        self.adapters: list[AdapterProcess] = []

    def start_adapter(self, counterparty: CounterpartyAddress, *, status_after_s: float = 60,
                      wait_logon: bool = True) -> AdapterProcess:
        adapter = start_adapter(bootstrap=self.harness.bootstrap, counterparties=[counterparty],
                                adapter_id=self.adapter_id, http_port=free_loopback_port(),
                                log_path=self.tmp_path / "fix-adapter.log", topic_env=self.topic_env,
                                status_after_s=status_after_s)
        self.adapters.append(adapter)
        if wait_logon:
            adapter.wait_ready(90)
        return adapter

    def order_events(self, ticket_id: str | None = None) -> list[dict[str, Any]]:
        self.events.poll(0.2)
        records = self.events.records[self.harness.topics.order_events]
        return [r for r in records if ticket_id is None or r["ticket_id"] == ticket_id]

    def traceparents(self, ticket_id: str) -> set[bytes | None]:
        """The `traceparent` headers the ticket's order events carried."""
        self.events.poll(0.2)
        topic = self.harness.topics.order_events
        return {next((v for k, v in message.headers() or [] if k == "traceparent"), None)
                for message, record in zip(self.events.raw[topic], self.events.records[topic], strict=True)
                if record["ticket_id"] == ticket_id}

    def wait_events(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout_s: float = 30,
                    what: str = "order events") -> list[dict[str, Any]]:
        wait_until(lambda: predicate(self.order_events()), timeout_s, what=what)
        return self.order_events()

    def close(self) -> None:
        for adapter in self.adapters:
            adapter.stop()
        self.events.close()


def executor_address(executor: LocalFixExecutor, heartbeat_s: int = 30) -> CounterpartyAddress:
    assert executor.port is not None
    return CounterpartyAddress("EXEC", executor.host, executor.port, "ADAPTER", executor.settings.sender_comp_id,
                               heartbeat_s)


def counter(adapter: AdapterProcess, name: str, **labels: str) -> float:
    samples = metric_values(adapter.metrics_text()).get(name, [])
    return sum(value for sample_labels, value in samples if all(sample_labels.get(k) == v for k, v in labels.items()))


def acceptor_address(acceptor: ScriptedFixAcceptor, heartbeat_s: int = 30) -> CounterpartyAddress:
    return CounterpartyAddress("SCRIPTED", "127.0.0.1", acceptor.port, acceptor.target_comp_id,
                               acceptor.sender_comp_id, heartbeat_s)


def ticket_ids(harness: ProcessorHarness, execution_id: str) -> dict[str, str]:
    """SELL / FX / BUY -> ticket id of an execution of the rfc_accept_all sample (from its first state change)."""
    tickets = wait_until(lambda: harness.state_changes(execution_id), 30, what="the execution's first state change")
    out = {}
    for ticket in tickets[0]["execution"]["tickets"]:
        inner = ticket["ticket"]
        out["FX" if inner["ticket_type"] == "FX_SPOT_ORDER" else inner["side"]] = inner["ticket_id"]
    return out
