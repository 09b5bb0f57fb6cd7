"""Which framing each topic's values use: Avro single-object encoding, or the Confluent Schema Registry's.

Services pick their codecs here rather than from `wire.serde` directly:

    from wire import formats
    wire_formats = formats.from_environment()              # SCHEMA_REGISTRY_URL set or not
    wire_formats.register_schemas({"order-events": topics.order_events})   # at start-up, topics it writes
    codec = wire_formats.value_codec("order-events", topics.order_events)
    data = codec.encode(record)
    record = codec.decode(message.value(), topic=message.topic(), partition=message.partition(), offset=message.offset())

(`formats.value_codec(kind, topic_name)` and `formats.register_schemas(...)` do the same with one
process-wide `WireFormats` built from the environment on first use; `topic_codecs(topic_names)`
gives every topic's codec by kind, e.g. for the processor's tasks.)

- **No registry configured** (`SCHEMA_REGISTRY_URL` unset): `value_codec` returns the single-object
  `wire.serde` codec itself, with no wrapper. Its decode refuses Confluent framing with a reason that
  names SCHEMA_REGISTRY_URL.
- **Registry configured**: values are written in the Confluent wire format (magic byte 0, the 4-byte
  big-endian schema id, the Avro body), under the subject `<topic>-value` (TopicNameStrategy), with the
  id the registry gave the current schema (`register_schemas` at start-up, else on first encode).
  Decoding accepts both framings, told apart by the first byte (0: Confluent, C3: single-object), so
  upstream producers can move from one to the other at their own pace. A Confluent-framed value's
  writer schema is fetched by id (once per id) and resolved into the current reader schema; a writer
  that is one of our released versions is recognised by its fingerprint.

Registry client settings: `SCHEMA_REGISTRY_URL` (comma-separated URLs; `mock://<name>` is
confluent-kafka's in-process registry, for unit tests only) and any `SchemaRegistryClient` property as
`SCHEMA_REGISTRY_CLIENT_<PROPERTY>` (upper case, dots as underscores), e.g.
`SCHEMA_REGISTRY_CLIENT_BASIC_AUTH_USER_INFO=user:secret`, `SCHEMA_REGISTRY_CLIENT_SSL_CA_LOCATION=/etc/ca.pem`.

Why not confluent-kafka's `AvroSerializer`/`AvroDeserializer` for our own records: the registry side
(registration, lookups by id, caching, auth) is the library's `SchemaRegistryClient`, used as is; the
5-byte frame is written here so that both framings share one Avro body codec with the same guarantees:
unknown or misspelt keys refused on encode (`EncodeError` naming the field), decode raising only
`DecodeError` (naming topic, partition, offset), negative enum indices refused, trailing bytes
refused, and no per-record schema work (the deserializer expands the reader schema and runs its rule
engine on every call). The tests prove the bytes interoperate both ways with the library's own
serializer and deserializer against a real registry.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError

from wire import serde
from wire.compatibility import RULES
from wire.errors import DecodeError, WireError
from wire.history import fingerprint_of
from wire.topics import BY_KIND, TOPICS, TopicNames

REGISTRY_URL_ENV = "SCHEMA_REGISTRY_URL"
CLIENT_ENV_PREFIX = "SCHEMA_REGISTRY_CLIENT_"
_SECRET_WORDS = ("password", "secret", "key", "token", "user.info", "credentials")
_BYTES_LIKE = (bytes, bytearray, memoryview)


class RegistryError(WireError):
    """The schema registry refused or could not be reached (start-up registration, lookups)."""


class SchemaLookupError(DecodeError):
    """A Confluent-framed value's schema could not be fetched because the registry did not answer.

    A DecodeError like any other to callers that only know DecodeError; `retriable` tells a caller
    that can wait (pause the partition, retry) that the record itself may be fine.
    """

    retriable = True


class ValueCodec(Protocol):
    name: str

    def encode(self, record: Mapping[str, Any]) -> bytes: ...

    def decode(self, data: bytes, *, topic: str, partition: int, offset: int) -> dict[str, Any]: ...


@dataclass(frozen=True)
class RegistrySettings:
    url: str | None = None
    client_config: Mapping[str, str] = field(default_factory=dict, repr=False)  # may hold credentials

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> RegistrySettings:
        url = environ.get(REGISTRY_URL_ENV, "").strip() or None
        config = {
            name[len(CLIENT_ENV_PREFIX):].lower().replace("_", "."): value
            for name, value in environ.items()
            if name.startswith(CLIENT_ENV_PREFIX) and value
        }
        return cls(url, config)

    @property
    def configured(self) -> bool:
        return self.url is not None

    def client(self) -> SchemaRegistryClient:
        if self.url is None:
            raise RegistryError(f"no schema registry configured ({REGISTRY_URL_ENV} is not set)")
        config: dict[str, object] = {name: _typed(value) for name, value in self.client_config.items()}
        return SchemaRegistryClient.new_client({**config, "url": self.url})

    def redacted(self) -> dict[str, str]:
        shown = {"url": self.url or "(none: single-object encoding)"}
        for name, value in self.client_config.items():
            shown[name] = "***" if any(word in name for word in _SECRET_WORDS) else value
        return shown


def _typed(value: str) -> object:
    """Environment values are text; the client wants numbers for timeouts, retries and cache sizes."""
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def subject_for(topic_name: str) -> str:
    """TopicNameStrategy for record values."""
    return f"{topic_name}-value"


class _WriterCache:
    """Writer schemas fetched from the registry, by schema id; shared by the codecs of one client."""

    def __init__(self, client: SchemaRegistryClient) -> None:
        self._client = client
        self._by_id: dict[int, tuple[str, serde.Writer]] = {}  # id -> (record full name, writer)
        self._lock = threading.Lock()

    def get(self, schema_id: int) -> tuple[str, serde.Writer]:
        found = self._by_id.get(schema_id)
        if found is not None:
            return found
        schema = self._client.get_schema(schema_id)  # the client's own cache answers repeats
        if schema.schema_type not in (None, "AVRO"):
            raise ValueError(f"schema id {schema_id} is a {schema.schema_type} schema, not Avro")
        if schema.schema_str is None:
            raise ValueError(f"schema id {schema_id} has no schema text")
        document = json.loads(schema.schema_str)
        if schema.references:
            raise ValueError(f"schema id {schema_id} uses schema references, which this reader does not follow")
        parsed = fastavro.parse_schema(document)
        _, fingerprint = fingerprint_of(document) if isinstance(document, dict) else ("", b"")
        fullname = document.get("name", "") if isinstance(document, dict) else str(document)
        namespace = document.get("namespace") if isinstance(document, dict) else None
        if namespace and "." not in fullname:
            fullname = f"{namespace}.{fullname}"
        writer = serde.Writer(f"registry schema id {schema_id}", fingerprint, serde.reader_copy(parsed))
        with self._lock:
            self._by_id[schema_id] = (fullname, writer)
        return fullname, writer


class ConfluentCodec:
    """Encodes in the Confluent wire format under `<topic>-value`; decodes both framings."""

    def __init__(self, base: serde.Codec, topic_name: str, client: SchemaRegistryClient, writers: _WriterCache) -> None:
        self.base = base
        self.name = base.name
        self.schema = base.schema
        self.topic_name = topic_name
        self.subject = subject_for(topic_name)
        self._client = client
        self._writers = writers
        self._header: bytes | None = None
        self._lock = threading.Lock()

    @property
    def schema_id(self) -> int:
        header = self._header or self.register()
        return int.from_bytes(header[1:], "big")

    def register(self) -> bytes:
        """Register the current schema under the subject (idempotent) and keep its id for encoding."""
        with self._lock:
            if self._header is None:
                schema = Schema(json.dumps(self.schema.schema), "AVRO")
                try:
                    schema_id = self._client.register_schema(self.subject, schema)
                except SchemaRegistryError as error:
                    raise RegistryError(
                        f"the registry refused {self.name} under subject {self.subject}: {error}"
                    ) from error
                except Exception as error:  # httpx transport errors, timeouts
                    raise RegistryError(f"cannot register {self.name} under subject {self.subject}: {error}") from error
                self._header = bytes([serde.CONFLUENT_MAGIC]) + schema_id.to_bytes(4, "big")
            return self._header

    def encode(self, record: Mapping[str, Any]) -> bytes:
        return self.base.encode_framed(self._header or self.register(), record)

    def reframe(self, single_object: bytes) -> bytes:
        """A value the single-object codec of the current schema encoded, in this codec's framing: the
        Avro body is the same, only the header differs (for callers handed ready-encoded values)."""
        if single_object[: serde.HEADER_SIZE] != self.base.header:
            raise ValueError(f"not a single-object {self.name} value of the current schema")
        return (self._header or self.register()) + single_object[serde.HEADER_SIZE :]

    def decode(self, data: bytes, *, topic: str, partition: int, offset: int) -> dict[str, Any]:
        if not isinstance(data, _BYTES_LIKE) or len(data) == 0 or data[0] != serde.CONFLUENT_MAGIC:
            return self.base.decode(data, topic=topic, partition=partition, offset=offset)
        def error(reason: str, kind: type[DecodeError] = DecodeError) -> DecodeError:
            return kind(schema_name=self.name, topic=topic, partition=partition, offset=offset, reason=reason)

        if len(data) < serde.CONFLUENT_HEADER_SIZE:
            raise error(f"truncated Confluent Schema Registry header: {len(data)} byte(s) of 5")
        schema_id = int.from_bytes(bytes(data[1:serde.CONFLUENT_HEADER_SIZE]), "big")
        try:
            fullname, writer = self._writers.get(schema_id)
        except SchemaRegistryError as failure:
            if failure.http_status_code == 404:
                raise error(f"schema id {schema_id} is not in the schema registry") from None
            raise error(f"schema registry error for schema id {schema_id}: {failure}", SchemaLookupError) from None
        except (ValueError, TypeError, KeyError) as failure:
            raise error(f"unusable writer schema id {schema_id}: {failure}") from None
        except Exception as failure:  # the registry did not answer: the record may be fine
            raise error(f"schema registry unreachable for schema id {schema_id}: {type(failure).__name__}: {failure}",
                        SchemaLookupError) from None
        if fullname != self.schema.fullname:
            short = fullname.rpartition(".")[2]
            raise error(f"written with schema {short} (registry schema id {schema_id}), not {self.name}")
        if writer.fingerprint == self.schema.fingerprint:
            resolved = None  # the current version: no resolution needed
        else:
            resolved = self.base.writers.get(writer.fingerprint, writer)
        return self.base.decode_body(data, serde.CONFLUENT_HEADER_SIZE, resolved,
                                     topic=topic, partition=partition, offset=offset)


class WireFormats:
    """The framing of every topic for one process: one registry client (or none), codecs per topic."""

    def __init__(self, settings: RegistrySettings | None = None, *, client: SchemaRegistryClient | None = None,
                 codecs: serde.Codecs | None = None) -> None:
        self.settings = settings or RegistrySettings()
        self._codecs = codecs or serde.DEFAULT
        self._client = client if client is not None else (self.settings.client() if self.settings.configured else None)
        self._writers = _WriterCache(self._client) if self._client is not None else None
        self._by_topic: dict[tuple[str, str], ConfluentCodec] = {}
        self._lock = threading.Lock()

    @property
    def registry(self) -> SchemaRegistryClient | None:
        return self._client

    def describe(self) -> str:
        if self._client is None:
            return "Avro single-object encoding (no schema registry configured)"
        return f"Confluent Schema Registry framing, registry {self.settings.url or 'injected client'}"

    def value_codec(self, kind: str, topic_name: str) -> ValueCodec:
        """The codec of a topic kind ("order-events") as the topic is named here."""
        base = self._codecs.codec(BY_KIND[kind].value_schema if kind in BY_KIND else kind)
        if self._client is None or self._writers is None:
            return base
        with self._lock:
            found = self._by_topic.get((kind, topic_name))
            if found is None:
                found = self._by_topic[(kind, topic_name)] = ConfluentCodec(base, topic_name, self._client, self._writers)
            return found

    def topic_codecs(self, names: TopicNames) -> dict[str, ValueCodec]:
        """The codec of every topic kind as `names` names them, by kind (e.g. for a processor task)."""
        return {topic.kind: self.value_codec(topic.kind, getattr(names, topic.kind.replace("-", "_"))) for topic in TOPICS}

    def reframer(self, kind: str, topic_name: str) -> Callable[[bytes], bytes]:
        """Turns a single-object value of the topic's current schema into the topic's framing
        (the identity without a registry)."""
        codec = self.value_codec(kind, topic_name)
        return codec.reframe if isinstance(codec, ConfluentCodec) else _same

    def register_schemas(self, topics: Mapping[str, str], *, set_compatibility: bool = False) -> dict[str, int]:
        """Register the current value schema of each topic kind -> topic name (the topics this process
        writes), returning subject -> schema id; nothing to do without a registry. With
        `set_compatibility`, each subject's compatibility level is set to the topic's rule
        (`wire.compatibility.RULES`), so that the registry refuses what the gate would."""
        if self._client is None:
            return {}
        ids = {}
        for kind, topic_name in topics.items():
            codec = self.value_codec(kind, topic_name)
            assert isinstance(codec, ConfluentCodec)
            if set_compatibility and kind in RULES:
                try:
                    self._client.set_compatibility(codec.subject, RULES[kind].value)
                except Exception as error:
                    raise RegistryError(f"cannot set the compatibility of {codec.subject}: {error}") from error
            ids[codec.subject] = codec.schema_id
        return ids


def _same(value: bytes) -> bytes:
    return value


_DEFAULT: WireFormats | None = None
_DEFAULT_LOCK = threading.Lock()


def from_environment(environ: Mapping[str, str] = os.environ) -> WireFormats:
    return WireFormats(RegistrySettings.from_environment(environ))


def default() -> WireFormats:
    """The process-wide WireFormats, built from the environment on first use."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = from_environment()
        return _DEFAULT


def value_codec(kind: str, topic_name: str) -> ValueCodec:
    return default().value_codec(kind, topic_name)


def reframer(kind: str, topic_name: str) -> Callable[[bytes], bytes]:
    return default().reframer(kind, topic_name)


def register_schemas(topics: Mapping[str, str], *, set_compatibility: bool = False) -> dict[str, int]:
    return default().register_schemas(topics, set_compatibility=set_compatibility)
