"""wire.topics: every topic names a loadable value schema and a key field that exists in it."""

from __future__ import annotations

import json
from collections.abc import Mapping

from wire.schemas import load
from wire.topics import BY_KIND, TOPICS


def field_type(definitions: Mapping[str, dict], record: str, path: str) -> object:
    """Type of a dotted field path; through a union of records the field must agree in every branch."""
    nodes: list[object] = [record]
    for part in path.split("."):
        found = set()
        for node in nodes:
            branches = node if isinstance(node, list) else [node]
            for branch in branches:
                definition = definitions[branch] if isinstance(branch, str) else branch
                found.add(json.dumps(next(f["type"] for f in definition["fields"] if f["name"] == part)))
        assert len(found) == 1, f"{path}: differs between union branches"
        nodes = [json.loads(found.pop())]
    return nodes[0]


def test_topic_kinds_and_default_names_are_unique() -> None:
    assert len({t.kind for t in TOPICS}) == len(TOPICS) == len({t.default_name for t in TOPICS})
    assert set(BY_KIND) == {t.kind for t in TOPICS}


def test_every_key_field_exists_and_is_a_string_or_the_original_key_bytes() -> None:
    schemas = load()
    for topic in TOPICS:
        key_type = field_type(schemas.definitions, schemas.fullname(topic.value_schema), topic.key_field)
        assert key_type in ("string", ["null", "bytes"]), (topic.kind, key_type)


def test_the_eight_public_topics_and_two_internal_topics_are_listed() -> None:
    assert [t.kind for t in TOPICS if not t.internal] == [
        "approved-proposals", "execution-commands", "command-results", "trade-tickets",
        "order-events", "execution-state-changes", "execution-snapshots", "dead-letters",
    ]
    assert [t.kind for t in TOPICS if t.internal] == ["admission-requests", "admission-decisions"]
