"""The AsyncAPI 3.0 document: generated from wire.topics.TOPICS and the Avro schemas, it has a
channel for every topic, and the official AsyncAPI parser (Avro payloads included) accepts it."""

from __future__ import annotations

import copy
import shutil
from typing import Any

import pytest
from fastavro.schema import to_parsing_canonical_form

from testkit.asyncapi_validator import node_available, validate
from wire import schemas
from wire.asyncapi import asyncapi_document
from wire.topics import TOPICS

needs_node = pytest.mark.skipif(not node_available(), reason="needs node and npm for the official AsyncAPI parser")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return asyncapi_document()


def test_asyncapi_document_has_a_channel_for_every_topic_in_the_registry(document: dict[str, Any]) -> None:
    channels = document["channels"]
    assert set(channels) == {topic.kind for topic in TOPICS}
    for topic in TOPICS:
        channel = channels[topic.kind]
        assert channel["address"].endswith(topic.default_name)
        assert list(channel["messages"]) == [topic.value_schema]
        message = document["components"]["messages"][topic.value_schema]
        # The same Avro schema the codec writes with (names relative to the namespace, as AsyncAPI wants).
        canonical = to_parsing_canonical_form(message["payload"]["schema"])
        assert canonical == schemas.load().compile(topic.value_schema).canonical_form
        assert "murmur2" in message["bindings"]["kafka"]["key"]["description"] or topic.kind == "dead-letters"
        assert set(topic.producers) <= {op["summary"].rsplit(" writes ", 1)[0] for op in document["operations"].values()
                                        if op["action"] == "send" and op["channel"]["$ref"].endswith(topic.kind)}
        assert topic.producers and topic.consumers and topic.delivery, topic.kind


def test_asyncapi_internal_topics_carry_the_application_id_parameter(document: dict[str, Any]) -> None:
    internal = [topic for topic in TOPICS if topic.internal]
    assert internal
    for topic in internal:
        channel = document["channels"][topic.kind]
        assert channel["address"] == f"{{application_id}}.{topic.default_name}"
        assert channel["parameters"]["application_id"]["default"] == "execution-processor"


@needs_node
def test_asyncapi_document_is_valid_for_the_official_parser(document: dict[str, Any]) -> None:
    errors = [str(d) for d in validate(document) if d.severity <= 1]
    assert errors == []


@needs_node
def test_asyncapi_validator_rejects_a_broken_avro_payload(document: dict[str, Any]) -> None:
    broken = copy.deepcopy(document)
    broken["components"]["messages"]["OrderEvent"]["payload"]["schema"]["fields"][0]["type"] = {"type": "enum", "name": "com.x"}
    assert any(d.severity == 0 for d in validate(broken)), "the validator accepts anything"


def test_node_lookup_is_the_one_the_validator_uses() -> None:
    assert node_available() == (shutil.which("node") is not None and shutil.which("npm") is not None)
