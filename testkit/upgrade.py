"""Processor and gateway processes run with a given schema directory, for upgrade tests: start with
the current schemas, stop, restart with the next version (testkit.schema_evolution), and back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import requests

from demo.services import Services
from local_kafka.broker import free_loopback_port
from testkit.gateway import TOKEN
from testkit.processor import ProcessorHarness, wait_until
from wire import serde
from wire.topics import TopicNames


class CodecsAsSerde:
    """`wire.serde`'s module functions over another schema directory's codecs, to stand in for
    `testkit.processor.serde` (monkeypatch) when the test process must read or write a version other
    than its own current one. Encoding drops top-level keys the schema no longer has, as a writer of
    that version would never set them."""

    def __init__(self, codecs: serde.Codecs) -> None:
        self.codecs = codecs

    def encode(self, name: str, record: Mapping[str, Any]) -> bytes:
        codec = self.codecs.codec(name)
        known = {f["name"] for f in codec.schema.schema["fields"]}
        return codec.encode({key: value for key, value in record.items() if key in known})

    def decode(self, name: str, data: bytes, *, topic: str, partition: int, offset: int) -> dict[str, Any]:
        return self.codecs.codec(name).decode(data, topic=topic, partition=partition, offset=offset)

    def writer_schema(self, data: bytes) -> str | None:
        return self.codecs.writer_schema(data)


@dataclass
class Stack:
    """A processor and a gateway as processes, run with one schema directory (WIRE_SCHEMA_DIR)."""

    services: Services
    gateway_url: str
    stopped: bool = False

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        codes = self.services.stop_all()
        assert all(code == 0 for _, code in codes), codes


def start_stack(harness: ProcessorHarness, schema_dir: Path, name: str) -> Stack:
    log_dir = harness.base_dir / f"logs-{name}"
    log_dir.mkdir()
    port = free_loopback_port()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": harness.bootstrap,
        "WIRE_SCHEMA_DIR": str(schema_dir),
        "GATEWAY_API_TOKENS": TOKEN,
        **{f"TOPIC_{f.name.upper()}": getattr(harness.topics, f.name) for f in fields(TopicNames)},
    }
    services = Services(log_dir, env)
    services.start("processor", "processor", "--application-id", harness.application_id, "--instance-id", "p1",
                   "--state-dir", str(harness.base_dir / "state"), "--partitions", str(harness.partitions),
                   "--commit-interval-ms", "50", "--http-port", "0")
    services.start("gateway", "gateway", "--application-id", harness.application_id, "--instance-id", name,
                   "--port", str(port))
    stack = Stack(services, f"http://127.0.0.1:{port}")
    harness.adopt(stack)  # stopped at the end of the test even if it fails before stopping it

    def ready() -> bool:
        services.check_alive()
        try:
            return requests.get(f"{stack.gateway_url}/readyz", timeout=5).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_until(ready, 90, interval_s=0.2, what=f"gateway and processor ({name}) ready")
    except BaseException:
        services.stop_all()
        raise
    return stack
