"""The .avsc contracts: they load, are documented, use no floats, and fingerprint per the Avro spec."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import fastavro
import pytest

from wire.errors import SchemaError
from wire.schemas import NAMESPACE, default_dir, load
from wire.topics import TOPICS

SCHEMA_FILES = sorted(default_dir().glob("*.avsc"))
DECIMAL = {"type": "string", "logicalType": "decimal-string"}
DECIMAL_NAME_SUFFIXES = ("qty", "quantity", "amount", "amount_estimated", "price", "bps")


def walk(node: object, where: str) -> Iterator[tuple[str, object]]:
    """Every schema node of a raw .avsc document, with a readable location."""
    yield where, node
    if isinstance(node, list):
        for i, branch in enumerate(node):
            yield from walk(branch, f"{where}|{i}")
    elif isinstance(node, dict):
        if isinstance(node.get("type"), (dict, list)):
            yield from walk(node["type"], where)
        for field in node.get("fields", []):
            yield from walk(field["type"], f"{where}.{field['name']}")
        for key in ("items", "values"):
            if key in node:
                yield from walk(node[key], f"{where}[]")


def raw_nodes() -> Iterator[tuple[str, object]]:
    for path in SCHEMA_FILES:
        yield from walk(json.loads(path.read_text()), path.stem)


def raw_fields() -> Iterator[tuple[str, dict]]:
    for where, node in raw_nodes():
        if isinstance(node, dict) and node.get("type") == "record":
            for field in node["fields"]:
                yield f"{where}.{field['name']}", field


def test_every_schema_file_loads_and_every_type_compiles_with_fastavro() -> None:
    schemas = load()
    assert len(SCHEMA_FILES) >= 7
    for fullname in schemas.definitions:
        fastavro.parse_schema(schemas.resolve(fullname))


def test_every_topic_value_schema_is_a_top_level_record_in_the_namespace() -> None:
    schemas = load()
    for topic in TOPICS:
        compiled = schemas.compile(topic.value_schema)
        assert compiled.fullname == f"{NAMESPACE}.{topic.value_schema}"
        assert compiled.schema["type"] == "record"


def test_every_named_type_lives_in_the_one_namespace() -> None:
    assert all(name.startswith(NAMESPACE + ".") for name in load().definitions)


def test_every_record_enum_and_field_has_a_doc() -> None:
    missing = [where for where, node in raw_nodes()
               if isinstance(node, dict) and node.get("type") in ("record", "enum") and not node.get("doc")]
    missing += [where for where, field in raw_fields() if not field.get("doc")]
    assert missing == []


def test_no_float_or_double_anywhere_in_the_schemas() -> None:
    floats = [where for where, node in raw_nodes()
              if node in ("float", "double") or (isinstance(node, dict) and node.get("type") in ("float", "double"))]
    assert floats == []


def test_quantity_amount_price_and_bps_fields_are_decimal_strings() -> None:
    def decimal_typed(schema: object) -> bool:
        return schema in (DECIMAL, ["null", DECIMAL])

    wrong = [where for where, field in raw_fields()
             if field["name"].endswith(DECIMAL_NAME_SUFFIXES) and not decimal_typed(field["type"])]
    assert wrong == []


def test_only_decimal_string_and_timestamp_micros_logical_types_are_used() -> None:
    used = {node["logicalType"] for _, node in raw_nodes() if isinstance(node, dict) and "logicalType" in node}
    assert used == {"decimal-string", "timestamp-micros"}


def test_nullable_fields_put_null_first_and_default_to_null() -> None:
    wrong = [where for where, field in raw_fields()
             if isinstance(field["type"], list) and "null" in field["type"]
             and (field["type"][0] != "null" or field.get("default", "absent") is not None)]
    assert wrong == []


def test_loading_does_not_depend_on_file_order() -> None:
    reference = {t.value_schema: load().compile(t.value_schema).fingerprint for t in TOPICS}
    for seed in range(5):
        files = list(SCHEMA_FILES)
        random.Random(seed).shuffle(files)
        shuffled = load(files=files)
        assert {t.value_schema: shuffled.compile(t.value_schema).fingerprint for t in TOPICS} == reference


def test_shared_types_are_defined_once_and_inlined_at_first_use_only() -> None:
    schema = load().compile("ExecutionStateChange").schema
    text = json.dumps(schema)
    assert text.count('"name": "com.wealth.execution.v1.TicketState"') == 1
    assert '"com.wealth.execution.v1.TicketState"' in text  # referenced again by name


def _crc64_avro(data: bytes) -> int:
    """Reference CRC-64-AVRO from the Avro specification (Schema Fingerprints)."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def test_reference_crc64_matches_the_avro_test_vector() -> None:
    assert _crc64_avro(b'"null"') == 7195948357588979594  # from Avro's schema-tests


@pytest.mark.parametrize("topic", TOPICS, ids=[t.kind for t in TOPICS])
def test_fingerprint_is_little_endian_crc64_avro_of_the_parsing_canonical_form(topic) -> None:
    compiled = load().compile(topic.value_schema)
    expected = _crc64_avro(compiled.canonical_form.encode()).to_bytes(8, "little")
    assert compiled.fingerprint == expected
    assert '"doc"' not in compiled.canonical_form


def test_every_topic_schema_has_a_distinct_fingerprint() -> None:
    schemas = load()
    assert len({schemas.compile(t.value_schema).fingerprint for t in TOPICS}) == len(TOPICS)


def _write(directory: Path, name: str, document: dict) -> None:
    (directory / f"{name}.avsc").write_text(json.dumps(document))


def _enum(name: str) -> dict:
    return {"type": "enum", "name": name, "namespace": NAMESPACE, "doc": "d", "symbols": ["A"]}


def test_a_type_defined_in_two_files_is_a_schema_error(tmp_path: Path) -> None:
    _write(tmp_path, "Side", _enum("Side"))
    _write(tmp_path, "Other", {"type": "record", "name": "Other", "namespace": NAMESPACE, "doc": "d",
                               "fields": [{"name": "s", "doc": "d", "type": _enum("Side")}]})
    with pytest.raises(SchemaError, match="defined twice"):
        load(tmp_path)


def test_a_reference_to_an_unknown_type_is_a_schema_error(tmp_path: Path) -> None:
    _write(tmp_path, "Rec", {"type": "record", "name": "Rec", "namespace": NAMESPACE, "doc": "d",
                             "fields": [{"name": "s", "doc": "d", "type": "Missing"}]})
    with pytest.raises(SchemaError, match="Missing"):
        load(tmp_path)


def test_a_file_named_unlike_its_type_is_a_schema_error(tmp_path: Path) -> None:
    _write(tmp_path, "Wrong", _enum("Side"))
    with pytest.raises(SchemaError, match="Wrong"):
        load(tmp_path)
