"""The gateway and the status consumer with a real schema registry (SCHEMA_REGISTRY_URL): they read
Confluent-framed state changes (as written by confluent-kafka's AvroSerializer) next to
single-object ones, and the gateway writes its commands in the Confluent framing that
confluent-kafka's AvroDeserializer reads."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from testkit.gateway import Client, LiveGateway, create_body, gateway_config, new_key, unique_proposal
from testkit.processor import ROOT, ProcessorHarness, wait_until
from wire import formats, serde
from wire.examples import SAMPLES
from wire.formats import RegistrySettings, WireFormats

pytestmark = [pytest.mark.integration, pytest.mark.registry]


def state_change(execution_id: str) -> dict[str, Any]:
    change = copy.deepcopy(next(r for name, _, r in SAMPLES if name == "ExecutionStateChange"))
    change["execution_id"] = change["execution"]["execution_id"] = execution_id
    return change


@pytest.fixture
def harness(kafka_bootstrap: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    harness = ProcessorHarness(kafka_bootstrap, tmp_path)  # its topics; no processor is started
    yield harness
    harness.close()


def publish_both_framings(harness: ProcessorHarness, registry_url: str) -> tuple[str, str]:
    """One state change in each framing; returns (confluent execution id, single-object execution id)."""
    topic = harness.topics.execution_state_changes
    confluent_id, plain_id = f"exec_cf_{uuid.uuid4().hex[:8]}", f"exec_so_{uuid.uuid4().hex[:8]}"
    serializer = AvroSerializer(SchemaRegistryClient({"url": registry_url}),
                                json.dumps(serde.codec("ExecutionStateChange").schema.schema))
    producer = Producer({"bootstrap.servers": harness.bootstrap, "partitioner": "murmur2_random"})
    producer.produce(topic, key=confluent_id.encode(),
                     value=serializer(state_change(confluent_id), SerializationContext(topic, MessageField.VALUE)))
    producer.produce(topic, key=plain_id.encode(), value=serde.encode("ExecutionStateChange", state_change(plain_id)))
    producer.flush(10)
    return confluent_id, plain_id


def test_registry_gateway_serves_both_framings_and_writes_confluent_framed_commands(
        harness: ProcessorHarness, registry_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats, "_DEFAULT", WireFormats(RegistrySettings(registry_url)))
    confluent_id, plain_id = publish_both_framings(harness, registry_url)
    gateway = LiveGateway(gateway_config(harness, result_timeout_s=0.5))
    try:
        gateway.wait_ready()
        client = Client(gateway.url)
        for execution_id in (confluent_id, plain_id):
            response = client.get(f"/rebalance/executions/{execution_id}")
            assert response.status_code == 200, response.text
        created = client.create(create_body(unique_proposal("rfc_accept_all", "registry")), new_key("registry"))
        assert created.status_code == 202  # no processor here to answer
    finally:
        gateway.stop()

    consumer = Consumer({"bootstrap.servers": harness.bootstrap, "group.id": f"check-{uuid.uuid4().hex}"})
    topic = harness.topics.execution_commands
    consumer.assign([TopicPartition(topic, p, 0) for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions])
    messages = wait_until(lambda: [m for m in consumer.consume(10, timeout=0.5) if not m.error()], 30,
                          what="the create command")
    consumer.close()
    value = messages[0].value()
    assert value[0] == 0  # Confluent framing: magic byte 0, then the schema id
    command = AvroDeserializer(SchemaRegistryClient({"url": registry_url}))(
        value, SerializationContext(topic, MessageField.VALUE))
    assert command["command_type"] == "CREATE_EXECUTION"
    latest = SchemaRegistryClient({"url": registry_url}).get_latest_version(f"{topic}-value")
    assert int.from_bytes(value[1:5], "big") == latest.schema_id  # registered at start-up


def test_registry_status_consumer_reads_both_framings(harness: ProcessorHarness, registry_url: str) -> None:
    confluent_id, plain_id = publish_both_framings(harness, registry_url)
    process = subprocess.Popen(
        [sys.executable, "-m", "status_consumer", "--from-beginning", "--topic", harness.topics.execution_state_changes],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": harness.bootstrap, "SCHEMA_REGISTRY_URL": registry_url},
    )
    lines: list[str] = []

    def read() -> None:
        for line in process.stdout or ():
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_until(lambda: all(any(e in line for line in lines) for e in (confluent_id[:16], plain_id[:16])), 60,
                   interval_s=0.1, what=f"both executions printed (got {lines})")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        reader.join(10)
    output = "".join(lines)
    assert confluent_id[:16] in output and plain_id[:16] in output, output
    assert "Traceback" not in output
