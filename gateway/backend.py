"""The gateway's Kafka side, assembled: the command/event producer, the command-results
waiter and the read model, started with the aiohttp app and stopped with it."""

from __future__ import annotations

import asyncio

from gateway.commands import Publisher
from gateway.config import GatewayConfig
from gateway.metrics import GatewayMetrics
from gateway.read_model import ReadModel
from gateway.results import ResultWaiter


class KafkaBackend:
    def __init__(self, config: GatewayConfig, metrics: GatewayMetrics) -> None:
        client = f"{config.application_id}-gateway-{config.instance_id}"
        self.publisher = Publisher(config.kafka, client, config.topics)
        self.results = ResultWaiter(config.kafka, config.topics.command_results, f"{client}-results")
        self.read_model = ReadModel(config.kafka, config.topics.execution_state_changes,
                                    config.topics.execution_snapshots, f"{client}-read-model", metrics,
                                    config.state_dir)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.publisher.start(loop)
        self.results.start(loop)
        self.read_model.start(loop)

    def close(self) -> None:
        self.read_model.close()  # also releases the state directory
        self.results.close()
        self.publisher.close()

    def checks(self) -> tuple[bool, bool, dict[str, str]]:
        """(alive, ready, per-component detail) for /healthz and /readyz."""
        publisher = "ok" if self.publisher.healthy else f"failed: {self.publisher.fatal_error or 'not running'}"
        results = "ready" if self.results.ready else ("starting" if self.results.healthy else "stopped")
        read_model = "ready" if self.read_model.ready else ("loading" if self.read_model.healthy else "stopped")
        alive = self.publisher.healthy and self.results.healthy and self.read_model.healthy
        ready = alive and self.results.ready and self.read_model.ready
        return alive, ready, {"producer": publisher, "command_results": results, "read_model": read_model}
