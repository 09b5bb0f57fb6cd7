"""Malformed values raise DecodeError, never another exception, and name topic, partition and offset."""

from __future__ import annotations

import copy
import io
from typing import Any

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wire import serde
from wire.errors import DecodeError

ORDER_EVENTS = serde.codec("OrderEvent")
WHERE = {"topic": "order-events", "partition": 3, "offset": 1534}


def decode_error(data: Any, codec: serde.Codec = ORDER_EVENTS) -> DecodeError:
    with pytest.raises(DecodeError) as caught:
        codec.decode(data, **WHERE)
    error = caught.value
    assert (error.topic, error.partition, error.offset, error.schema_name) == ("order-events", 3, 1534, codec.name)
    assert str(error).startswith(f"cannot decode {codec.name} from order-events[3]@1534: ")
    return error


def plain_schema(node: Any) -> Any:
    """The OrderEvent schema without logical types: same wire layout, raw strings and longs."""
    if isinstance(node, dict):
        return {k: plain_schema(v) for k, v in node.items() if k != "logicalType"}
    if isinstance(node, list):
        return [plain_schema(v) for v in node]
    return node


PLAIN_EVENT = {
    "event_id": "exec-rpt-1", "execution_id": "exec_1", "ticket_id": "tkt_1", "source": "OMS_X",
    "event_type": "FILLED", "external_order_id": None, "occurred_at": 0,
    "details": {"fill_id": None, "last_qty": None, "last_price": None, "filled_qty": None,
                "avg_price": None, "reason": None},
}


def forge(field: str, avro_type: Any, value: Any) -> bytes:
    """An OrderEvent header over a body whose `field` was written as `avro_type` (a lying writer)."""
    schema = plain_schema(copy.deepcopy(ORDER_EVENTS.schema.schema))
    record = copy.deepcopy(PLAIN_EVENT)
    fields, target = schema["fields"], record
    *parents, leaf = field.split(".")
    for parent in parents:
        fields = next(f for f in fields if f["name"] == parent)["type"]["fields"]
        target = target[parent]
    spec = next(f for f in fields if f["name"] == leaf)
    spec["type"] = avro_type
    spec.pop("default", None)
    target[leaf] = value
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(schema), record)
    return ORDER_EVENTS.header + body.getvalue()


def valid() -> bytes:
    return forge("event_id", "string", "exec-rpt-1")


def test_the_forging_helper_writes_a_valid_record_when_it_does_not_lie() -> None:
    assert ORDER_EVENTS.decode(valid(), **WHERE)["event_id"] == "exec-rpt-1"


def test_empty_value() -> None:
    assert "empty value" in decode_error(b"").reason


def test_tombstone_none_value() -> None:
    assert "expected bytes, got NoneType" in decode_error(None).reason


def test_text_instead_of_bytes() -> None:
    assert "expected bytes, got str" in decode_error("\xc3\x01abcdefgh").reason


def test_wrong_marker() -> None:
    assert "bad marker 0000" in decode_error(b"\x00\x00" + valid()[2:]).reason


def test_json_value() -> None:
    assert "bad marker 7b22" in decode_error(b'{"event_id": "x"}').reason


def test_confluent_schema_registry_framing_without_a_registry_names_schema_registry_url() -> None:
    reason = decode_error(b"\x00\x00\x00\x00\x07" + valid()[10:]).reason
    assert reason == ("bad marker 0000: Confluent Schema Registry framing (magic byte 0, schema id 7), "
                      "and no schema registry is configured here: set SCHEMA_REGISTRY_URL to read it")


def test_single_byte() -> None:
    assert "truncated header" in decode_error(b"\xc3").reason


def test_truncated_header() -> None:
    assert "truncated header" in decode_error(valid()[:6]).reason


def test_unknown_fingerprint() -> None:
    error = decode_error(b"\xc3\x01" + bytes(8) + valid()[10:])
    assert error.reason == "unknown writer schema fingerprint 0000000000000000"


def test_value_written_with_another_known_schema_names_that_schema() -> None:
    data = serde.codec("DeadLetter").header + valid()[10:]
    assert decode_error(data).reason == "written with schema DeadLetter, not OrderEvent"


def test_header_only_without_body() -> None:
    assert "truncated body" in decode_error(ORDER_EVENTS.header).reason


def test_every_truncation_of_a_full_record_is_a_decode_error(samples_by_schema) -> None:
    for name, records in samples_by_schema.items():
        codec = serde.codec(name)
        for record in records:
            data = codec.encode(record)
            for end in range(len(data)):
                decode_error(data[:end], codec)


def test_trailing_garbage() -> None:
    assert decode_error(valid() + b"\x00\x01").reason == "2 byte(s) of trailing garbage after the record"


def test_enum_index_out_of_range() -> None:
    assert "out of range" in decode_error(forge("event_type", "int", 99)).reason


@pytest.mark.parametrize("index", [-1, -7, -2**40])
def test_negative_enum_index_does_not_wrap_to_a_symbol(index: int) -> None:
    assert "out of range" in decode_error(forge("event_type", "int", index)).reason


def test_union_branch_index_out_of_range() -> None:
    assert "out of range" in decode_error(forge("external_order_id", "long", 7)).reason


@pytest.mark.xfail(strict=True, reason=(
    "fastavro reads union[index] with Cython's list fast path, so -1 picks the last declared "
    "branch (a non-canonical encoding of a valid value); flips to XPASS once fastavro rejects it"))
def test_negative_union_branch_index_that_otherwise_decodes_cleanly() -> None:
    schema = plain_schema(copy.deepcopy(ORDER_EVENTS.schema.schema))
    fields = schema["fields"]
    position = next(i for i, f in enumerate(fields) if f["name"] == "external_order_id")
    fields[position] = {"name": "branch", "type": "long"}  # -1 where the union index goes...
    fields.insert(position + 1, {"name": "value", "type": "string"})  # ...then a valid string
    record = {**PLAIN_EVENT, "branch": -1, "value": "OMS1"}
    del record["external_order_id"]
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(schema), record)
    decode_error(ORDER_EVENTS.header + body.getvalue())


def test_invalid_utf8_in_a_string() -> None:
    assert "UTF-8" in decode_error(forge("event_id", "bytes", b"\xff\xfe")).reason


def test_negative_string_length() -> None:
    decode_error(forge("event_id", "long", -5))


def test_string_length_beyond_the_data() -> None:
    decode_error(forge("event_id", "long", 2**40))


@pytest.mark.parametrize("text", ["1e5", "NaN", "Infinity", " 1", "1_000", "+1", "1.", ".5", "abc", "", "01"])
def test_decimal_field_holding_a_non_plain_decimal_string(text: str) -> None:
    error = decode_error(forge("details.last_qty", ["null", "string"], text))
    assert "not a plain decimal string" in error.reason


@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_raise_anything_but_decode_error(data: bytes) -> None:
    try:
        ORDER_EVENTS.decode(data, **WHERE)
    except DecodeError:
        pass


@given(st.binary(max_size=200))
def test_arbitrary_body_after_a_valid_header_decodes_or_raises_decode_error(body: bytes) -> None:
    for name in ("OrderEvent", "ExecutionStateChange", "ExecutionCommand"):
        codec = serde.codec(name)
        try:
            assert isinstance(codec.decode(codec.header + body, **WHERE), dict)
        except DecodeError:
            pass


def test_decode_error_survives_pickling() -> None:
    import pickle

    error = decode_error(b"")
    clone = pickle.loads(pickle.dumps(error))
    assert (str(clone), clone.offset, clone.reason) == (str(error), error.offset, error.reason)
