"""wire.formats against a real schema registry (Apicurio Registry 2.4.2 started by the session, or
SCHEMA_REGISTRY_URL): registration at start-up, both directions of interoperability with
confluent-kafka's own AvroSerializer/AvroDeserializer, and the compatibility setting."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from wire import serde
from wire.examples import SAMPLES
from wire.formats import RegistrySettings, WireFormats

pytestmark = pytest.mark.registry
WHERE: dict[str, Any] = {"topic": "t", "partition": 0, "offset": 0}


def sample(name: str) -> dict[str, Any]:
    return next(record for schema, _, record in SAMPLES if schema == name)


@pytest.fixture
def topics() -> dict[str, str]:
    """Topic names of this test's own, so subjects never collide between tests."""
    run = uuid.uuid4().hex[:8]
    return {"order-events": f"{run}.order-events", "execution-state-changes": f"{run}.execution-state-changes"}


def test_registry_register_schemas_at_start_up_sets_the_topic_rule(registry_url: str, topics: dict[str, str]) -> None:
    wire_formats = WireFormats(RegistrySettings(registry_url))
    ids = wire_formats.register_schemas(topics, set_compatibility=True)
    client = SchemaRegistryClient({"url": registry_url})
    for subject, schema_id in ids.items():
        latest = client.get_latest_version(subject)
        assert latest.schema_id == schema_id
        assert client.get_compatibility(subject) == "FULL_TRANSITIVE"
    # Registering again (a restart, a second instance) is idempotent: the same id.
    assert WireFormats(RegistrySettings(registry_url)).register_schemas(topics) == ids


def test_registry_order_event_from_avro_serializer_is_decoded_by_our_codec(registry_url: str, topics: dict[str, str]) -> None:
    topic = topics["order-events"]
    serializer = AvroSerializer(SchemaRegistryClient({"url": registry_url}),
                                json.dumps(serde.codec("OrderEvent").schema.schema))
    data = serializer(sample("OrderEvent"), SerializationContext(topic, MessageField.VALUE))
    assert data[0] == 0
    decoded = WireFormats(RegistrySettings(registry_url)).value_codec("order-events", topic).decode(data, **WHERE)
    assert decoded == serde.decode("OrderEvent", serde.encode("OrderEvent", sample("OrderEvent")), **WHERE)


def test_registry_state_change_from_our_codec_is_read_by_avro_deserializer(registry_url: str, topics: dict[str, str]) -> None:
    topic = topics["execution-state-changes"]
    wire_formats = WireFormats(RegistrySettings(registry_url))
    wire_formats.register_schemas({"execution-state-changes": topic})
    data = wire_formats.value_codec("execution-state-changes", topic).encode(sample("ExecutionStateChange"))
    change = AvroDeserializer(SchemaRegistryClient({"url": registry_url}))(
        data, SerializationContext(topic, MessageField.VALUE))
    assert change["execution"]["tickets"] == serde.decode(
        "ExecutionStateChange", serde.encode("ExecutionStateChange", sample("ExecutionStateChange")), **WHERE,
    )["execution"]["tickets"]


def test_registry_refuses_an_incompatible_schema_under_the_full_rule(registry_url: str, topics: dict[str, str]) -> None:
    topic = topics["order-events"]
    WireFormats(RegistrySettings(registry_url)).register_schemas({"order-events": topic}, set_compatibility=True)
    incompatible = json.loads(json.dumps(serde.codec("OrderEvent").schema.schema))
    incompatible["fields"].append({"name": "venue", "type": "string"})
    client = SchemaRegistryClient({"url": registry_url})
    assert client.test_compatibility(f"{topic}-value", Schema(json.dumps(incompatible), "AVRO")) is False
    with pytest.raises(SchemaRegistryError) as caught:
        client.register_schema(f"{topic}-value", Schema(json.dumps(incompatible), "AVRO"))
    assert caught.value.http_status_code == 409


def test_registry_newer_writer_registered_by_a_producer_is_read_by_the_current_reader(
        registry_url: str, topics: dict[str, str]) -> None:
    """FORWARD through the registry: the reader fetches the new writer schema by id and resolves it."""
    topic = topics["order-events"]
    WireFormats(RegistrySettings(registry_url)).register_schemas({"order-events": topic}, set_compatibility=True)
    newer = json.loads(json.dumps(serde.codec("OrderEvent").schema.schema))
    newer["fields"].append({"name": "venue", "type": ["null", "string"], "default": None})
    serializer = AvroSerializer(SchemaRegistryClient({"url": registry_url}), json.dumps(newer))
    data = serializer({**sample("OrderEvent"), "venue": "XSES"}, SerializationContext(topic, MessageField.VALUE))
    decoded = WireFormats(RegistrySettings(registry_url)).value_codec("order-events", topic).decode(data, **WHERE)
    assert "venue" not in decoded and decoded["event_id"] == sample("OrderEvent")["event_id"]
