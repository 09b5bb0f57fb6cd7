"""The processor with a real schema registry (SCHEMA_REGISTRY_URL, Apicurio started by the project):
order events written by confluent-kafka's own AvroSerializer are folded, and the state changes it
writes in the Confluent framing are read by confluent-kafka's AvroDeserializer, as a status
consumer in another language's Confluent ecosystem would."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from testkit.processor import T0, ProcessorHarness, load_sample, wait_until
from wire import formats, serde
from wire import records as translate
from wire.formats import RegistrySettings, WireFormats

pytestmark = [pytest.mark.integration, pytest.mark.registry]


def read_confluent(bootstrap: str, topic: str, registry_url: str, expected: int) -> list[dict[str, Any]]:
    """Every record of `topic` through confluent-kafka's AvroDeserializer (read_committed)."""
    deserializer = AvroDeserializer(SchemaRegistryClient({"url": registry_url}))
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"cf-{uuid.uuid4().hex}",
                         "isolation.level": "read_committed", "enable.auto.commit": False})
    records: list[dict[str, Any]] = []
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])

        def read() -> bool:
            for message in consumer.consume(500, timeout=0.2):
                if message.error() is None:
                    assert message.value()[:1] == b"\x00", "not the Confluent framing"
                    records.append(deserializer(message.value(), SerializationContext(topic, MessageField.VALUE)))
            return len(records) >= expected

        wait_until(read, 60, what=f"{expected} records of {topic} through AvroDeserializer")
    finally:
        consumer.close()
    return records


def test_processor_folds_order_events_from_avro_serializer_and_writes_state_changes_avro_deserializer_reads(
    harness: ProcessorHarness, registry_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCHEMA_REGISTRY_URL", registry_url)
    monkeypatch.setattr(formats, "_DEFAULT", WireFormats(RegistrySettings(registry_url)))  # the harness reads both
    harness.start()
    raw = load_sample("rfc_partial_then_fill")
    harness.publish_proposal(raw)  # single-object: the processor reads both framings on its inputs
    result = harness.result(harness.create(f"k-registry-{uuid.uuid4().hex[:6]}", raw["proposal_id"], raw["version_no"]))
    assert result["outcome"] == "CREATED", result
    execution_id = result["execution_id"]
    (submit,) = wait_until(lambda: harness.instructions(execution_id), 30, what="the SUBMIT")
    ticket = translate.ticket_from_record(submit["ticket"])

    topic = harness.topics.order_events
    serializer = AvroSerializer(SchemaRegistryClient({"url": registry_url}),
                                json.dumps(serde.codec("OrderEvent").schema.schema))
    producer = Producer({"bootstrap.servers": harness.bootstrap, "partitioner": "murmur2_random"})
    for n, (kind, details) in enumerate([
        ("ORDER_ACCEPTED", {}),
        ("FILLED", {"fill_id": "F1", "last_qty": ticket.order_quantity, "last_price": Decimal("101.5")}),
    ]):
        record = translate.order_event_to_record(translate.order_event_from_record({
            "event_id": f"cf-{n}", "execution_id": execution_id, "ticket_id": ticket.ticket_id,
            "source": "OMS_CONFLUENT", "event_type": kind, "external_order_id": "OMS-CF-1",
            "occurred_at": T0 + timedelta(minutes=1, seconds=n), "details": details or None,
        }))
        value = serializer(record, SerializationContext(topic, MessageField.VALUE))
        assert value[:1] == b"\x00"
        producer.produce(topic, key=execution_id.encode(), value=value)
    producer.flush(10)

    def sell_filled() -> bool:
        tickets = harness.view(execution_id).tickets
        return tickets.get(ticket.ticket_id, {}).get("status") == "FILLED"

    wait_until(sell_filled, 60, what="the Confluent-framed fill folded")
    changes = read_confluent(harness.bootstrap, harness.topics.execution_state_changes, registry_url, 4)
    mine = [c for c in changes if c["execution_id"] == execution_id]
    assert [c["sequence"] for c in mine] == list(range(1, len(mine) + 1))
    assert {c["cause"]["id"] for c in mine} >= {"cf-0", "cf-1"}  # both AvroSerializer events folded
    assert all(c["execution"]["content"] == "DELTA" for c in mine)
    assert not harness.dead_letters()
