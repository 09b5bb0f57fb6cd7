"""The compatibility gate: every released version of a topic's value schema against the others.

Each topic follows one rule (docs/wire.md, "Compatibility rules" says why):

- BACKWARD_TRANSITIVE: a reader of any version reads every earlier writer version;
- FULL_TRANSITIVE: that, and a reader of any version reads every later writer version too.

The checking is Apache Avro's own (`avro.compatibility.ReaderWriterCompatibilityChecker`, the Java
checker's port; `avro` is a dev dependency, imported only when checking). This module only picks
the pairs and turns the checker's JSON-pointer locations (`/fields/7/type/fields/1`) into field
paths (`details.venue`), so a failure names the field.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from wire.history import SchemaVersion, load_history
from wire.topics import TOPICS


class Rule(StrEnum):
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"


# By topic kind. Why each: docs/wire.md, "Compatibility rules".
RULES: Mapping[str, Rule] = {
    "approved-proposals": Rule.FULL_TRANSITIVE,
    "execution-commands": Rule.BACKWARD_TRANSITIVE,
    "command-results": Rule.FULL_TRANSITIVE,
    "trade-tickets": Rule.FULL_TRANSITIVE,
    "order-events": Rule.FULL_TRANSITIVE,
    "execution-state-changes": Rule.FULL_TRANSITIVE,
    "execution-snapshots": Rule.FULL_TRANSITIVE,
    "dead-letters": Rule.FULL_TRANSITIVE,
    "admission-requests": Rule.FULL_TRANSITIVE,
    "admission-decisions": Rule.FULL_TRANSITIVE,
}


def rule_for_schema(name: str) -> Rule:
    """The strictest rule of the topics a schema is the value of."""
    rules = {RULES[topic.kind] for topic in TOPICS if topic.value_schema == name}
    return Rule.FULL_TRANSITIVE if Rule.FULL_TRANSITIVE in rules or not rules else Rule.BACKWARD_TRANSITIVE


@dataclass(frozen=True)
class Incompatibility:
    schema: str
    reader_version: int
    writer_version: int
    kinds: tuple[str, ...]  # the checker's incompatibility types, e.g. reader_field_missing_default_value
    fields: tuple[str, ...]  # field paths in the reader schema, e.g. details.venue or events[].kind (symbols)
    details: tuple[str, ...]  # the checker's messages

    @property
    def direction(self) -> str:
        return "BACKWARD" if self.reader_version > self.writer_version else "FORWARD"

    def __str__(self) -> str:
        return (
            f"{self.schema}: v{self.reader_version} cannot read v{self.writer_version} ({self.direction}): "
            f"{', '.join(self.kinds)} at {', '.join(self.fields)} ({'; '.join(self.details)})"
        )


def check_pair(reader: SchemaVersion, writer: SchemaVersion) -> Incompatibility | None:
    """Can `reader` read what `writer` wrote (Avro schema resolution)?"""
    from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType  # a dev dependency

    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    result = checker.get_compatibility(_avro(reader.schema), _avro(writer.schema))
    if result.compatibility is SchemaCompatibilityType.compatible:
        return None
    return Incompatibility(
        schema=reader.name,
        reader_version=reader.version,
        writer_version=writer.version,
        kinds=tuple(sorted(kind.value for kind in result.incompatibilities)),
        fields=_fields(reader.schema, result.locations),
        details=tuple(sorted(str(message) for message in result.messages)),
    )


def check_versions(versions: Sequence[SchemaVersion], rule: Rule) -> list[Incompatibility]:
    """Every pair of versions the rule covers (transitive: all of them, not only neighbours)."""
    problems = []
    for i, older in enumerate(versions):
        for newer in versions[i + 1 :]:
            backward = check_pair(newer, older)
            if backward is not None:
                problems.append(backward)
            if rule is Rule.FULL_TRANSITIVE:
                forward = check_pair(older, newer)
                if forward is not None:
                    problems.append(forward)
    return problems


def check_history(directory: Path | None = None, rules: Mapping[str, Rule] | None = None) -> list[Incompatibility]:
    """The gate over a schema directory's whole history; empty when every rule holds."""
    history = load_history(directory)
    problems = []
    for name, versions in sorted(history.items()):
        rule = (rules or {}).get(name) or rule_for_schema(name)
        problems += check_versions(versions, rule)
    return problems


def _fields(schema: Mapping[str, Any], locations: set[str]) -> tuple[str, ...]:
    paths = {field_path(schema, location) for location in locations}
    if len(paths) > 1:
        paths.discard("<root>")  # the checker keeps its starting location next to the real ones
    return tuple(sorted(paths))


def _avro(schema: Mapping[str, Any]) -> Any:
    from avro.errors import IgnoredLogicalType
    from avro.schema import parse

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IgnoredLogicalType)  # decimal-string: a string to Avro, as intended
        return parse(json.dumps(schema))


def field_path(schema: Mapping[str, Any], location: str) -> str:
    """`/fields/7/type/fields/1/type/symbols` in `schema` -> `details.venue (symbols)`."""
    named: dict[str, Any] = {}
    _collect_named(schema, named)
    node: Any = schema
    path = ""
    tokens = [token for token in location.split("/") if token]
    i = 0
    while i < len(tokens):
        token = tokens[i]
        node = _deref(node, named)
        if token == "fields" and i + 1 < len(tokens) and isinstance(node, dict):
            field = node["fields"][int(tokens[i + 1])]
            path = f"{path}.{field['name']}" if path else field["name"]
            node = field
            i += 2
            continue
        if token == "type" and isinstance(node, dict) and "name" in node and "type" in node and "fields" not in node:
            node = node["type"]  # from a field to its type
        elif token.isdigit() and isinstance(node, list):
            node = node[int(token)]  # a union branch
        elif token in ("items", "values") and isinstance(node, dict):
            node = node[token]
            path += "[]" if token == "items" else "{}"
        elif token in ("symbols", "name", "size"):
            return f"{path or '<root>'} ({token})"
        i += 1
    return path or "<root>"


def _deref(node: Any, named: Mapping[str, Any]) -> Any:
    return named[node] if isinstance(node, str) and node in named else node


def _collect_named(node: Any, out: dict[str, Any]) -> None:
    if isinstance(node, list):
        for item in node:
            _collect_named(item, out)
    elif isinstance(node, dict):
        if node.get("type") in ("record", "enum", "fixed", "error") and "name" in node:
            out.setdefault(node["name"], node)
        for key in ("type", "items", "values"):
            if key in node and not isinstance(node[key], str):
                _collect_named(node[key], out)
        for field in node.get("fields", []):
            _collect_named(field, out)
