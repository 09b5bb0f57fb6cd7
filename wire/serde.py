"""Avro single-object encoding of the wire records, with fastavro.

Layout (Avro spec, "Single object encoding"): C3 01, the 8-byte little-endian CRC-64-AVRO
fingerprint of the writer schema's Parsing Canonical Form, then the schemaless binary body.
Schemas are loaded and parsed once at import; encode and decode only run fastavro.

    from wire import serde
    data = serde.encode("OrderEvent", event)          # or serde.codec("order-events").encode(event)
    event = serde.decode("order-events", data, topic=msg.topic(), partition=msg.partition(), offset=msg.offset())

Encoding always uses the current schema. Decoding accepts the current schema and every released
version in the schema history (`wire.history`), resolving an older (or newer, released ahead)
writer into the current reader schema by Avro schema resolution. A record of the current
version takes the same path as before there was a history: the history costs it nothing.
`wire.formats` adds the Confluent Schema Registry framing on top of these codecs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import fastavro
from fastavro import schemaless_reader, schemaless_writer

from wire import decimals  # noqa: F401  (registers the decimal-string logical type)
from wire.errors import DecodeError, EncodeError
from wire.explain import find_problem
from wire.history import load_history
from wire.schemas import SchemaSet, WireSchema, load
from wire.topics import TOPICS

MARKER = b"\xc3\x01"
HEADER_SIZE = len(MARKER) + 8
CONFLUENT_MAGIC = 0  # Confluent Schema Registry framing: magic byte 0, then a 4-byte big-endian schema id
CONFLUENT_HEADER_SIZE = 5
_BYTES_LIKE = (bytes, bytearray, memoryview)


@dataclass(frozen=True)
class Writer:
    """A writer schema this codec resolves from: parsed for reading (negative enum indices refused)."""

    label: str  # "OrderEvent v1", or where a registry schema came from
    fingerprint: bytes
    parsed: Any


class Codec:
    """Encoder/decoder of one record schema."""

    __slots__ = ("schema", "name", "header", "_parsed", "_read_schema", "_definitions", "_known", "writers")

    def __init__(self, schema: WireSchema, schemas: SchemaSet, known: Mapping[bytes, str],
                 writers: Mapping[bytes, Writer] | None = None) -> None:
        self.schema = schema
        self.name = schema.name
        self.header = MARKER + schema.fingerprint
        self._parsed = schema.parsed
        self._read_schema = _refuse_negative_enum_indices(schema.parsed)
        self._definitions = schemas.definitions
        self._known = known  # fingerprint -> schema name of every codec, to name a wrong writer schema
        # Released versions other than the current one, by fingerprint: resolved into the current schema.
        self.writers: Mapping[bytes, Writer] = {
            fp: writer for fp, writer in (writers or {}).items() if fp != schema.fingerprint
        }

    @property
    def fingerprint(self) -> bytes:
        return self.schema.fingerprint

    def encode(self, record: Mapping[str, Any]) -> bytes:
        return self.encode_framed(self.header, record)

    def encode_framed(self, header: bytes, record: Mapping[str, Any]) -> bytes:
        """`header` followed by the record's Avro body in the current schema (what every framing shares)."""
        out = BytesIO()
        out.write(header)
        try:
            # strict_allow_default: a misspelt or unknown key fails instead of being dropped silently.
            schemaless_writer(out, self._parsed, record, strict_allow_default=True)
        except Exception as exc:
            raise self._encode_error(record, exc) from exc
        return out.getvalue()

    def decode(self, data: bytes, *, topic: str, partition: int, offset: int) -> dict[str, Any]:
        """Decode one record; any defect raises DecodeError naming topic, partition and offset."""
        try:
            header_ok = data[:HEADER_SIZE] == self.header
        except TypeError:  # None (a tombstone) or another non-sliceable value
            header_ok = False
        if header_ok:
            body = BytesIO(data)
            body.seek(HEADER_SIZE)
            try:
                record = schemaless_reader(body, self._read_schema, None)
            except Exception as exc:
                reason = _describe_read_failure(exc)
            else:
                left = len(data) - body.tell()
                if left == 0:
                    return record  # type: ignore[return-value]
                reason = f"{left} byte(s) of trailing garbage after the record"
        else:
            writer = self._released_writer(data)
            if writer is not None:
                return self.decode_body(data, HEADER_SIZE, writer, topic=topic, partition=partition, offset=offset)
            reason = self._header_problem(data)
        raise DecodeError(schema_name=self.name, topic=topic, partition=partition, offset=offset, reason=reason)

    def decode_body(self, data: bytes, start: int, writer: Writer | None, *,
                    topic: str, partition: int, offset: int) -> dict[str, Any]:
        """Decode the Avro body at data[start:], written with `writer` (None: the current schema)."""
        body = BytesIO(data)
        body.seek(start)
        try:
            if writer is None:
                record = schemaless_reader(body, self._read_schema, None)
            else:
                record = schemaless_reader(body, writer.parsed, self._parsed)
        except Exception as exc:
            reason = _describe_read_failure(exc)
            if writer is not None:
                reason = f"{reason} (writer schema {writer.label})"
        else:
            left = len(data) - body.tell()
            if left == 0:
                return record  # type: ignore[return-value]
            reason = f"{left} byte(s) of trailing garbage after the record"
        raise DecodeError(schema_name=self.name, topic=topic, partition=partition, offset=offset, reason=reason)

    def _released_writer(self, data: object) -> Writer | None:
        if not self.writers or not isinstance(data, _BYTES_LIKE) or len(data) < HEADER_SIZE:
            return None
        if bytes(data[: len(MARKER)]) != MARKER:
            return None
        return self.writers.get(bytes(data[len(MARKER) : HEADER_SIZE]))

    def _header_problem(self, data: object) -> str:
        if not isinstance(data, _BYTES_LIKE):
            return f"expected bytes, got {type(data).__name__}"
        if len(data) == 0:
            return "empty value"
        if data[0] == CONFLUENT_MAGIC:
            return confluent_without_registry(data)
        if bytes(data[: len(MARKER)]) != MARKER[: len(data)]:
            return f"bad marker {bytes(data[:2]).hex()} (expected c301: Avro single-object encoding)"
        if len(data) < HEADER_SIZE:
            return f"truncated header: {len(data)} byte(s), the single-object header alone is {HEADER_SIZE}"
        fingerprint = bytes(data[len(MARKER) : HEADER_SIZE])
        writer = self._known.get(fingerprint)
        if writer is not None:
            return f"written with schema {writer}, not {self.name}"
        return f"unknown writer schema fingerprint {fingerprint.hex()}"

    def _encode_error(self, record: object, exc: Exception) -> EncodeError:
        problem = find_problem(self._definitions, self.schema.fullname, record)
        if problem is None:  # our checker saw nothing: pass fastavro's words on
            return EncodeError(schema_name=self.name, reason=f"{type(exc).__name__}: {exc}")
        field, reason = problem
        return EncodeError(schema_name=self.name, field=field or None, reason=reason)


class _Symbols:
    """Enum symbols that refuse a negative index.

    fastavro looks a symbol up with symbols[index], so on a plain list a negative index on the
    wire wraps around to a real symbol (-1 -> the last one) instead of failing. This is not a
    list, so fastavro's Cython list fast path does not apply and __getitem__ runs.
    """

    __slots__ = ("_symbols",)

    def __init__(self, symbols: list[str]) -> None:
        self._symbols = tuple(symbols)

    def __getitem__(self, index: int) -> str:
        if index < 0:
            raise IndexError(f"negative enum index {index}")
        return self._symbols[index]

    def __len__(self) -> int:
        return len(self._symbols)

    def __iter__(self) -> Iterator[str]:
        return iter(self._symbols)


def _refuse_negative_enum_indices(node: Any) -> Any:
    """A copy of a parsed schema for reading only (fastavro's writer needs real lists)."""
    if isinstance(node, list):
        return [_refuse_negative_enum_indices(item) for item in node]
    if not isinstance(node, dict):
        return node
    guarded = {key: _refuse_negative_enum_indices(value) for key, value in node.items()}
    if guarded.get("type") == "enum":
        guarded["symbols"] = _Symbols(node["symbols"])
    return guarded  # __named_schemas is a dict of schemas, so it is guarded by the same walk


def confluent_without_registry(data: bytes | bytearray | memoryview) -> str:
    if len(data) < CONFLUENT_HEADER_SIZE:
        return f"bad marker {bytes(data[:2]).hex()}: truncated Confluent Schema Registry header ({len(data)} byte(s))"
    schema_id = int.from_bytes(bytes(data[1:CONFLUENT_HEADER_SIZE]), "big")
    return (f"bad marker {bytes(data[:2]).hex()}: Confluent Schema Registry framing (magic byte 0, schema id "
            f"{schema_id}), and no schema registry is configured here: set SCHEMA_REGISTRY_URL to read it")


def reader_copy(parsed: Any) -> Any:
    """A parsed schema prepared for reading only: negative enum indices are refused."""
    return _refuse_negative_enum_indices(parsed)


def _describe_read_failure(exc: Exception) -> str:
    if isinstance(exc, fastavro.read.SchemaResolutionError):
        return f"cannot resolve the writer schema into the current one: {exc}"
    if isinstance(exc, EOFError):
        return "truncated body: the data ends before the record does"
    if isinstance(exc, UnicodeDecodeError):
        return "a string field is not valid UTF-8"
    if isinstance(exc, IndexError):
        return "an enum symbol or union branch index is out of range"
    return f"{type(exc).__name__}: {exc}"


class Codecs:
    """The codecs of every topic, from one schema directory (its current .avsc files and history)."""

    def __init__(self, directory: Path | None = None) -> None:
        schemas = load(directory)
        history = load_history(directory)
        self.known: dict[bytes, str] = {}  # every fingerprint of ours -> schema name
        self.by_name: dict[str, Codec] = {}
        for topic in TOPICS:
            if topic.value_schema in self.by_name:
                self.by_name[topic.kind] = self.by_name[topic.value_schema]
                continue
            versions = history.get(topic.value_schema, ())
            writers = {v.fingerprint: Writer(v.label, v.fingerprint, reader_copy(fastavro.parse_schema(v.schema)))
                       for v in versions}
            codec = Codec(schemas.compile(topic.value_schema), schemas, self.known, writers)
            self.known[codec.fingerprint] = codec.name
            self.known.update(dict.fromkeys(writers, codec.name))
            self.by_name[codec.name] = self.by_name[topic.kind] = codec

    def codec(self, name: str) -> Codec:
        """The codec of a schema ("OrderEvent") or topic kind ("order-events")."""
        try:
            return self.by_name[name]
        except KeyError:
            known = ", ".join(sorted(self.by_name))
            raise KeyError(f"no wire schema or topic kind {name!r}; known: {known}") from None

    def writer_schema(self, data: bytes) -> str | None:
        if isinstance(data, _BYTES_LIKE) and len(data) >= HEADER_SIZE and bytes(data[: len(MARKER)]) == MARKER:
            return self.known.get(bytes(data[len(MARKER) : HEADER_SIZE]))
        return None


DEFAULT = Codecs()  # WIRE_SCHEMA_DIR or the installed schemas/, at import
_CODECS, _KNOWN = DEFAULT.by_name, DEFAULT.known


def codec(name: str) -> Codec:
    """The codec of a schema ("OrderEvent") or topic kind ("order-events")."""
    return DEFAULT.codec(name)


def encode(name: str, record: Mapping[str, Any]) -> bytes:
    return codec(name).encode(record)


def decode(name: str, data: bytes, *, topic: str, partition: int, offset: int) -> dict[str, Any]:
    return codec(name).decode(data, topic=topic, partition=partition, offset=offset)


def writer_schema(data: bytes) -> str | None:
    """Name of the schema a value was written with, from its fingerprint (any released version); None if not ours."""
    return DEFAULT.writer_schema(data)


# -- pre-encoded fragments ---------------------------------------------------------------------------
#
# A record that repeats a long, append-only array in every message (the lifecycle log of an
# ExecutionSnapshot) need not be re-encoded from scratch each time: the encoder of the array's
# item type gives each item's bytes once, and `splice_array_before_tail` puts the array into a
# record encoded with that array empty. The result is byte for byte what `encode` gives for the
# whole record (fastavro writes a non-empty array as one block: count, items, 0).


def body_encoder(type_name: str) -> Callable[[Mapping[str, Any]], bytes]:
    """A function giving the schemaless Avro body of one value of named type `type_name` (no header)."""
    schemas = load()
    parsed = schemas.compile(type_name).parsed

    def encode_body(record: Mapping[str, Any]) -> bytes:
        out = BytesIO()
        schemaless_writer(out, parsed, record, strict_allow_default=True)
        return out.getvalue()

    return encode_body


def zigzag_varint(value: int) -> bytes:
    """An Avro int/long: zig-zag, then base-128 varint."""
    n = (value << 1) ^ (value >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def splice_array_before_tail(encoded: bytes, tail: bytes, count: int, items: bytes) -> bytes:
    """`encoded` is a record whose last field is `tail` (its encoded bytes) preceded by an empty
    array (one 0 byte); returns it with that array holding `count` pre-encoded `items`."""
    cut = len(encoded) - len(tail) - 1
    if encoded[cut:] != b"\x00" + tail:
        raise ValueError("the record does not end with an empty array followed by the given tail")
    if count == 0:
        return encoded
    return b"".join((encoded[:cut], zigzag_varint(count), items, b"\x00", tail))
