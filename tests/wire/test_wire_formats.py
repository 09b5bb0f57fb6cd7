"""wire.formats against confluent-kafka's in-process mock:// registry: framing per topic, both
framings read, interoperability with the library's own AvroSerializer/AvroDeserializer."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from wire import formats, serde
from wire.errors import DecodeError, EncodeError
from wire.examples import SAMPLES
from wire.formats import ConfluentCodec, RegistrySettings, WireFormats

WHERE: dict[str, Any] = {"topic": "order-events", "partition": 1, "offset": 42}


def sample(name: str) -> dict[str, Any]:
    return next(record for schema, _, record in SAMPLES if schema == name)


@pytest.fixture
def client() -> SchemaRegistryClient:
    return SchemaRegistryClient.new_client({"url": f"mock://{uuid.uuid4().hex}"})


@pytest.fixture
def wire_formats(client: SchemaRegistryClient) -> WireFormats:
    return WireFormats(RegistrySettings("mock://test"), client=client)


def test_formats_without_registry_value_codec_is_the_single_object_codec_itself() -> None:
    plain = WireFormats(RegistrySettings.from_environment({}))
    assert plain.value_codec("order-events", "any-name") is serde.codec("OrderEvent")
    assert plain.register_schemas({"order-events": "oe"}) == {}


def test_formats_without_registry_confluent_framing_is_refused_naming_schema_registry_url(
        wire_formats: WireFormats) -> None:
    data = wire_formats.value_codec("order-events", "oe").encode(sample("OrderEvent"))
    with pytest.raises(DecodeError) as caught:
        serde.codec("OrderEvent").decode(data, **WHERE)
    assert "Confluent Schema Registry framing (magic byte 0, schema id 1)" in caught.value.reason
    assert "set SCHEMA_REGISTRY_URL" in caught.value.reason


def test_formats_settings_from_environment_pass_client_properties_through() -> None:
    settings = RegistrySettings.from_environment({
        "SCHEMA_REGISTRY_URL": "https://registry:8081", "SCHEMA_REGISTRY_CLIENT_BASIC_AUTH_USER_INFO": "u:secret",
        "SCHEMA_REGISTRY_CLIENT_SSL_CA_LOCATION": "/etc/ca.pem",
    })
    assert settings.url == "https://registry:8081"
    assert settings.client_config == {"basic.auth.user.info": "u:secret", "ssl.ca.location": "/etc/ca.pem"}
    assert settings.redacted()["basic.auth.user.info"] == "***"
    assert "secret" not in repr(settings)


def test_formats_register_schemas_uses_the_topic_name_strategy(
        wire_formats: WireFormats, client: SchemaRegistryClient) -> None:
    ids = wire_formats.register_schemas({"order-events": "oms.order-events", "execution-commands": "cmds"})
    assert set(ids) == {"oms.order-events-value", "cmds-value"}
    latest = client.get_latest_version("oms.order-events-value")
    assert json.loads(latest.schema.schema_str or "") == serde.codec("OrderEvent").schema.schema


def test_formats_confluent_round_trip_of_every_sample(wire_formats: WireFormats) -> None:
    for name, _, record in SAMPLES:
        codec = wire_formats.value_codec(name, f"topic-{name}")
        data = codec.encode(record)
        assert data[0] == 0 and data[5:] == serde.encode(name, record)[serde.HEADER_SIZE:]
        assert codec.decode(data, **WHERE) == serde.decode(name, serde.encode(name, record), **WHERE)


def test_formats_registry_codec_reads_single_object_encoding_too(wire_formats: WireFormats) -> None:
    codec = wire_formats.value_codec("order-events", "oe")
    assert codec.decode(serde.encode("OrderEvent", sample("OrderEvent")), **WHERE)["event_id"] == "exec-rpt-9"


def test_formats_avro_serializer_output_is_read_by_our_codec(
        wire_formats: WireFormats, client: SchemaRegistryClient) -> None:
    serializer = AvroSerializer(client, json.dumps(serde.codec("OrderEvent").schema.schema))
    data = serializer(sample("OrderEvent"), SerializationContext("oe", MessageField.VALUE))
    assert wire_formats.value_codec("order-events", "oe").decode(data, **WHERE)["details"] == sample("OrderEvent")["details"]


def test_formats_our_output_is_read_by_avro_deserializer(
        wire_formats: WireFormats, client: SchemaRegistryClient) -> None:
    data = wire_formats.value_codec("execution-state-changes", "esc").encode(sample("ExecutionStateChange"))
    change = AvroDeserializer(client)(data, SerializationContext("esc", MessageField.VALUE))
    assert change == serde.decode("ExecutionStateChange", serde.encode("ExecutionStateChange",
                                                                       sample("ExecutionStateChange")), **WHERE)


def test_formats_older_writer_registered_by_another_producer_is_resolved_into_the_current_schema(
        wire_formats: WireFormats, client: SchemaRegistryClient) -> None:
    older = json.loads(json.dumps(serde.codec("OrderEvent").schema.schema))
    older["fields"] = [f for f in older["fields"] if f["name"] != "external_order_id"]  # it has a default
    serializer = AvroSerializer(client, json.dumps(older))
    record = {k: v for k, v in sample("OrderEvent").items() if k != "external_order_id"}
    data = serializer(record, SerializationContext("oe", MessageField.VALUE))
    decoded = wire_formats.value_codec("order-events", "oe").decode(data, **WHERE)
    assert decoded["external_order_id"] is None and decoded["event_id"] == record["event_id"]


def test_formats_confluent_value_of_another_schema_is_named(
        wire_formats: WireFormats, client: SchemaRegistryClient) -> None:
    data = wire_formats.value_codec("dead-letters", "dl").encode(sample("DeadLetter"))
    with pytest.raises(DecodeError, match=r"written with schema DeadLetter \(registry schema id \d+\), not OrderEvent"):
        wire_formats.value_codec("order-events", "oe").decode(data, **WHERE)


def test_formats_unknown_schema_id_is_a_decode_error(wire_formats: WireFormats) -> None:
    with pytest.raises(DecodeError, match="schema id 4242 is not in the schema registry") as caught:
        wire_formats.value_codec("order-events", "oe").decode(b"\x00\x00\x00\x10\x92" + b"\x02x", **WHERE)
    assert not isinstance(caught.value, formats.SchemaLookupError)


@pytest.mark.parametrize(("data", "reason"), [
    (b"\x00\x00\x01", "truncated Confluent Schema Registry header: 3 byte(s) of 5"),
    (b"", "empty value"),
    (None, "expected bytes, got NoneType"),
    (b"\x7b\x22", "bad marker 7b22"),
])
def test_formats_framing_detection_refuses_what_is_neither(wire_formats: WireFormats, data: Any, reason: str) -> None:
    with pytest.raises(DecodeError) as caught:
        wire_formats.value_codec("order-events", "oe").decode(data, **WHERE)
    assert reason in caught.value.reason


def test_formats_trailing_bytes_and_negative_enum_index_are_refused_in_confluent_framing(
        wire_formats: WireFormats) -> None:
    codec = wire_formats.value_codec("order-events", "oe")
    data = codec.encode({**sample("OrderEvent"), "event_id": "e", "execution_id": "x", "ticket_id": "t", "source": "s"})
    with pytest.raises(DecodeError, match="2 byte"):
        codec.decode(data + b"\x00\x00", **WHERE)
    forged = bytearray(data)
    forged[5 + 8] = 0x01  # the event_type enum index after four 1-char strings: zig-zag -1
    with pytest.raises(DecodeError, match="out of range"):
        codec.decode(bytes(forged), **WHERE)


def test_formats_encode_errors_name_the_field_in_confluent_framing(wire_formats: WireFormats) -> None:
    with pytest.raises(EncodeError) as caught:
        wire_formats.value_codec("order-events", "oe").encode({**sample("OrderEvent"), "venue": "X"})
    assert "venue" in str(caught.value)


def test_formats_unreachable_registry_is_a_retriable_decode_error() -> None:
    unreachable = WireFormats(RegistrySettings("http://127.0.0.1:9", {"max.retries": "0", "timeout": "2"}))
    with pytest.raises(formats.SchemaLookupError) as caught:
        unreachable.value_codec("order-events", "oe").decode(b"\x00\x00\x00\x00\x01\x02x", **WHERE)
    assert caught.value.retriable and "unreachable" in caught.value.reason
    with pytest.raises(formats.RegistryError, match="cannot register OrderEvent under subject oe-value"):
        unreachable.register_schemas({"order-events": "oe"})


def test_formats_registry_refusing_a_schema_at_start_up_names_the_subject(
        wire_formats: WireFormats, client: SchemaRegistryClient) -> None:
    codec = wire_formats.value_codec("order-events", "oe")
    assert isinstance(codec, ConfluentCodec)

    def refuse(subject: str, schema: Schema, normalize_schemas: bool = False) -> int:
        from confluent_kafka.schema_registry.error import SchemaRegistryError
        raise SchemaRegistryError(409, 409, "incompatible")

    client.register_schema = refuse  # type: ignore[method-assign,assignment]
    with pytest.raises(formats.RegistryError, match="the registry refused OrderEvent under subject oe-value"):
        wire_formats.register_schemas({"order-events": "oe"})


def test_formats_topic_codecs_follow_the_configured_topic_names(wire_formats: WireFormats) -> None:
    from wire.topics import TOPICS, TopicNames

    names = TopicNames.defaults("app", {"TOPIC_ORDER_EVENTS": "oms.events"})
    codecs = wire_formats.topic_codecs(names)
    assert set(codecs) == {topic.kind for topic in TOPICS}
    order_events = codecs["order-events"]
    assert isinstance(order_events, ConfluentCodec) and order_events.subject == "oms.events-value"
    admission = codecs["admission-requests"]
    assert isinstance(admission, ConfluentCodec) and admission.subject == "app.admission-requests-value"
    assert WireFormats(RegistrySettings()).topic_codecs(names)["order-events"] is serde.codec("OrderEvent")
