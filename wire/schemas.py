"""Loads the Avro contracts from schemas/*.avsc and compiles one self-contained schema per record.

Each file holds one named type named like the file (types used by a single record may be
defined inline inside it); files refer to each other's types by name. All files are read
into one table of definitions first and references are resolved from that table, so the
order files are read in never matters.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from wire.errors import SchemaError

NAMESPACE = "com.wealth.execution.v1"
PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED_KINDS = frozenset({"record", "error", "enum", "fixed"})


def default_dir() -> Path:
    """The `schemas` package's directory (installed with the wheel); WIRE_SCHEMA_DIR overrides it.

    A directory given in WIRE_SCHEMA_DIR holds the same layout: the current `*.avsc` files and
    `history/` (see `wire.history`).
    """
    override = os.environ.get("WIRE_SCHEMA_DIR")
    if override:
        return Path(override)
    import schemas  # the top-level package holding the .avsc files as package data

    return schemas.DIRECTORY


@dataclass(frozen=True)
class WireSchema:
    """One compiled record schema, ready for fastavro."""

    fullname: str
    schema: dict[str, Any]  # self-contained JSON: every named type defined at its first use
    parsed: dict[str, Any]  # fastavro.parse_schema(schema), parsed once
    canonical_form: str  # Avro Parsing Canonical Form
    fingerprint: bytes  # CRC-64-AVRO of the canonical form, little-endian, as in single-object encoding

    @property
    def name(self) -> str:
        return self.fullname.rpartition(".")[2]


@dataclass(frozen=True)
class SchemaSet:
    """All named types of the schema directory, by full name.

    A definition refers to other named types by full name only; nested definitions are
    lifted out, so every named type appears once.
    """

    definitions: Mapping[str, dict[str, Any]]

    def fullname(self, name: str) -> str:
        """Full name of "OrderEvent" or "com.wealth.execution.v1.OrderEvent"."""
        if name in self.definitions:
            return name
        candidate = f"{NAMESPACE}.{name}"
        if candidate in self.definitions:
            return candidate
        raise SchemaError(f"no schema named {name!r}")

    def resolve(self, name: str) -> dict[str, Any]:
        """The self-contained schema of a named type: definitions inlined at first use, names after."""
        defined: set[str] = set()

        def expand(node: object) -> object:
            if isinstance(node, str):
                if node in PRIMITIVES or node in defined:
                    return node
                if node not in self.definitions:
                    raise SchemaError(f"unknown type {node!r} referenced while resolving {name}")
                defined.add(node)  # before the fields: a recursive type refers to itself by name
                definition = dict(self.definitions[node])
                if "fields" in definition:
                    definition["fields"] = [dict(f, type=expand(f["type"])) for f in definition["fields"]]
                return definition
            if isinstance(node, list):
                return [expand(branch) for branch in node]
            if isinstance(node, dict) and node.get("type") == "array":
                return dict(node, items=expand(node["items"]))
            if isinstance(node, dict) and node.get("type") == "map":
                return dict(node, values=expand(node["values"]))
            return node

        resolved = expand(self.fullname(name))
        assert isinstance(resolved, dict)
        return resolved

    def compile(self, name: str) -> WireSchema:
        schema = self.resolve(name)
        canonical = to_parsing_canonical_form(schema)
        return WireSchema(
            fullname=schema["name"],
            schema=schema,
            parsed=fastavro.parse_schema(schema),  # type: ignore[arg-type]  # a record schema parses to a dict
            canonical_form=canonical,
            # fastavro renders CRC-64-AVRO as the hex of its little-endian bytes: exactly the wire bytes.
            fingerprint=bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")),
        )


def load(directory: Path | None = None, *, files: Iterable[Path] | None = None) -> SchemaSet:
    """Read every .avsc of the directory (or the given files, in the given order) and check references."""
    paths = list(files) if files is not None else sorted((directory or default_dir()).glob("*.avsc"))
    if not paths:
        raise SchemaError(f"no .avsc files in {directory or default_dir()}")
    definitions: dict[str, dict[str, Any]] = {}
    for path in paths:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SchemaError(f"{path}: cannot read schema: {exc}") from exc
        top = _lift(document, "", definitions, path)
        if not isinstance(top, str) or top.rpartition(".")[2] != path.stem:
            raise SchemaError(f"{path}: must define one named type called {path.stem}")
    schemas = SchemaSet(definitions)
    for fullname in definitions:
        schemas.resolve(fullname)  # fails on any dangling reference, at load time
    return schemas


def _lift(node: object, namespace: str, out: dict[str, dict[str, Any]], path: Path) -> object:
    """Normalise a schema node: names become full names, named definitions move into `out`."""
    if isinstance(node, str):
        return node if node in PRIMITIVES else _qualify(node, namespace)
    if isinstance(node, list):
        return [_lift(branch, namespace, out, path) for branch in node]
    if not isinstance(node, dict) or "type" not in node:
        raise SchemaError(f"{path}: not a schema: {node!r:.80}")
    kind = node["type"]
    if kind in _NAMED_KINDS:
        fullname = _qualify(node["name"], node.get("namespace", namespace))
        if fullname in out:
            raise SchemaError(f"{path}: {fullname} is defined twice")
        own_namespace = fullname.rpartition(".")[0]
        definition = {k: v for k, v in node.items() if k != "namespace"}
        definition["name"] = fullname
        out[fullname] = definition  # claimed before the fields, so a duplicate inside is caught
        if "fields" in node:
            definition["fields"] = [
                dict(field, type=_lift(field["type"], own_namespace, out, path)) for field in node["fields"]
            ]
        return fullname
    if kind == "array":
        return dict(node, items=_lift(node["items"], namespace, out, path))
    if kind == "map":
        return dict(node, values=_lift(node["values"], namespace, out, path))
    if isinstance(kind, (dict, list)):  # {"type": {...}}: a wrapped schema
        return _lift(kind, namespace, out, path)
    return node  # a primitive, possibly with a logicalType


def _qualify(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"
