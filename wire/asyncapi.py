"""The AsyncAPI 3.0 document of every Kafka topic, generated from `wire.topics.TOPICS` and the
Avro schemas that `wire.schemas` loads from schemas/ (nothing here lists a topic or a field).

`python -m wire.asyncapi` prints it (JSON); the gateway serves it at `GET /asyncapi.json`.
Each topic is a channel (address = the default name; internal topics carry the processor's
application id as a parameter) with one message: the value's Avro schema, self-contained
(named types inlined at first use, as the codec compiles it), the key as a Kafka message
binding, the optional `correlation_id` header; each producer and consumer is an operation.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from wire import schemas
from wire.topics import CORRELATION_ID_HEADER, TOPICS, Topic

ASYNCAPI_VERSION = "3.0.0"
AVRO_FORMAT = "application/vnd.apache.avro;version=1.9.0"
# Single-object encoding: C3 01, the writer schema's 8-byte CRC-64-AVRO fingerprint, the Avro body.
CONTENT_TYPE = "application/vnd.apache.avro+binary"
KAFKA_BINDING_VERSION = "0.5.0"
APPLICATION_ID_PARAMETER = "application_id"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def _address(topic: Topic) -> str:
    if topic.internal:
        return f"{{{APPLICATION_ID_PARAMETER}}}.{topic.default_name}"
    return topic.default_name


def _key_description(topic: Topic) -> str:
    if topic.kind == "dead-letters":
        return "the original record's key bytes, unchanged"
    return f"UTF-8 bytes of the value's `{topic.key_field}` (not Avro); producers use the murmur2 partitioner"


def _channel(topic: Topic) -> dict[str, Any]:
    channel: dict[str, Any] = {
        "address": _address(topic),
        "title": topic.kind,
        "description": (f"Value `{topic.value_schema}` (Avro), key `{topic.key_field}`. "
                        f"Written by {', '.join(topic.producers) or 'unspecified'}; "
                        f"read by {', '.join(topic.consumers) or 'unspecified'}. "
                        f"Delivery: {topic.delivery or 'unspecified'}."),
        "messages": {topic.value_schema: {"$ref": f"#/components/messages/{topic.value_schema}"}},
        "bindings": {"kafka": {"topic": topic.default_name, "bindingVersion": KAFKA_BINDING_VERSION}},
    }
    if topic.internal:
        channel["parameters"] = {APPLICATION_ID_PARAMETER: {
            "description": "the processor's application id (PROCESSOR_APPLICATION_ID)",
            "default": "execution-processor",
        }}
    return channel


def _relative_names(node: Any, namespace: str) -> Any:
    """The schema with names relative to the top-level namespace (`name` + `namespace` rather than a
    dotted full name), as the AsyncAPI Avro schema requires; the same Avro schema, canonically."""
    prefix = namespace + "."
    if isinstance(node, str):
        return node.removeprefix(prefix)
    if isinstance(node, list):
        return [_relative_names(branch, namespace) for branch in node]
    if not isinstance(node, dict):
        return node
    out = {key: _relative_names(value, namespace) if key in ("type", "items", "values") else value
           for key, value in node.items()}
    if "fields" in node:
        out["fields"] = [dict(field, type=_relative_names(field["type"], namespace)) for field in node["fields"]]
    if isinstance(node.get("name"), str) and "." in node["name"]:
        own_namespace, _, simple = node["name"].rpartition(".")
        out["name"] = simple
        if own_namespace != namespace:
            out["namespace"] = own_namespace
    return out


def _payload_schema(compiled: schemas.WireSchema) -> dict[str, Any]:
    namespace = compiled.fullname.rpartition(".")[0]
    relative: dict[str, Any] = _relative_names(compiled.schema, namespace)
    return {**relative, "namespace": namespace}


def _message(topic: Topic, loaded: schemas.SchemaSet) -> dict[str, Any]:
    compiled = loaded.compile(topic.value_schema)
    doc = loaded.definitions[compiled.fullname].get("doc", "")
    return {
        "name": topic.value_schema,
        "title": topic.value_schema,
        "summary": doc,
        "description": (f"Avro single-object encoding: `C3 01`, the CRC-64-AVRO fingerprint of the writer schema "
                        f"(`{compiled.fingerprint.hex()}` for this one, little-endian bytes), then the Avro body. "
                        f"With a schema registry (SCHEMA_REGISTRY_URL) the Confluent framing instead: `00`, the "
                        f"4-byte schema id under subject `<topic>-value`, then the same Avro body. "
                        f"Schema source: `schemas/{topic.value_schema}.avsc` and the files it names; every "
                        f"released version readers accept: `schemas/history/{topic.value_schema}/`."),
        "contentType": CONTENT_TYPE,
        "headers": {
            "type": "object",
            "properties": {CORRELATION_ID_HEADER: {
                "type": "string", "description": "optional: the correlation id (UTF-8), for tracing without decoding",
            }},
        },
        "payload": {"schemaFormat": AVRO_FORMAT, "schema": _payload_schema(compiled)},
        "bindings": {"kafka": {
            "key": {"type": "string", "description": _key_description(topic)},
            "bindingVersion": KAFKA_BINDING_VERSION,
        }},
    }


def _operations(topic: Topic) -> dict[str, dict[str, Any]]:
    operations: dict[str, dict[str, Any]] = {}
    channel = {"$ref": f"#/channels/{topic.kind}"}
    message = [{"$ref": f"#/channels/{topic.kind}/messages/{topic.value_schema}"}]
    for action, roles, verb in (("send", topic.producers, "writes"), ("receive", topic.consumers, "reads")):
        for role in roles:
            operations[f"{_slug(role)}-{action}s-{topic.kind}"] = {
                "action": action, "channel": channel, "messages": message,
                "summary": f"{role} {verb} {topic.kind}",
                "description": f"Delivery: {topic.delivery or 'unspecified'}.",
            }
    return operations


def asyncapi_document(version: str = "0.1.0") -> dict[str, Any]:
    """The whole document, as a JSON-ready dict."""
    loaded = schemas.load()
    operations: dict[str, dict[str, Any]] = {}
    for topic in TOPICS:
        operations.update(_operations(topic))
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Execution integration service: Kafka topics",
            "version": version,
            "description": ("Every topic of the execution integration service (RFC-0014I): who writes it, who reads "
                            "it, its key, its Avro value and the delivery a reader can rely on. Topic names are "
                            "defaults (TOPIC_<KIND> overrides each). Keys are plain UTF-8; values use Avro "
                            "single-object encoding (docs/wire.md)."),
        },
        "servers": {"local": {
            "host": "127.0.0.1:9092", "protocol": "kafka",
            "description": "a local broker (`python -m local_kafka start --port 9092`); any Kafka 3.x/4.x cluster works",
        }},
        "defaultContentType": CONTENT_TYPE,
        "channels": {topic.kind: _channel(topic) for topic in TOPICS},
        "operations": operations,
        "components": {"messages": {topic.value_schema: _message(topic, loaded) for topic in TOPICS}},
    }


def main() -> int:
    json.dump(asyncapi_document(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
