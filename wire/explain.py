"""Finds the first place a record departs from its schema, for EncodeError messages.

Only runs after fastavro refused a record (the cold path): fastavro's own messages lack the
field path for enums, unions and unknown fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from wire.decimals import LOGICAL_TYPE, is_wire_decimal

Problem = tuple[str, str]  # (field path, reason)
Schema = dict[str, Any]  # a parsed Avro schema object ({"type": ..., ...}), as JSON

_PY_TYPES: dict[str, tuple[type, ...]] = {
    "null": (type(None),),
    "boolean": (bool,),
    "int": (int,),
    "long": (int,),
    "string": (str,),
    "bytes": (bytes, bytearray, memoryview),
}


def find_problem(definitions: Mapping[str, Schema], schema: object, value: object, path: str = "") -> Problem | None:
    """(path, reason) of the first mismatch between value and schema, or None if it matches."""
    if isinstance(schema, str):
        schema = definitions.get(schema) or {"type": schema}
    if isinstance(schema, list):
        return _union(definitions, schema, value, path)
    assert isinstance(schema, dict)
    kind, logical = schema["type"], schema.get("logicalType")
    if logical == LOGICAL_TYPE:
        return None if is_wire_decimal(value) else (path, f"expected a finite decimal.Decimal, got {_show(value)}")
    if logical in ("timestamp-micros", "timestamp-millis"):
        ok = isinstance(value, datetime) or (isinstance(value, int) and not isinstance(value, bool))
        return None if ok else (path, f"expected a datetime, got {_show(value)}")
    if kind == "record":
        return _record(definitions, schema, value, path)
    if kind == "enum":
        if value in schema["symbols"]:
            return None
        return path, f"{_show(value)} is not a {_short(schema)} symbol ({', '.join(schema['symbols'])})"
    if kind == "array":
        if not isinstance(value, (list, tuple)):
            return path, f"expected a list, got {_show(value)}"
        for index, item in enumerate(value):
            problem = find_problem(definitions, schema["items"], item, f"{path}[{index}]")
            if problem:
                return problem
        return None
    if kind in _PY_TYPES:
        if not isinstance(value, _PY_TYPES[kind]) or (kind in ("int", "long") and isinstance(value, bool)):
            return path, f"expected {kind}, got {_show(value)}"
    return None


def _record(definitions: Mapping[str, Schema], schema: Schema, value: object, path: str) -> Problem | None:
    if not isinstance(value, Mapping):
        return path, f"expected a mapping for {_short(schema)}, got {_show(value)}"
    fields = schema["fields"]
    unknown = sorted(str(key) for key in value if key not in {f["name"] for f in fields})
    if unknown:
        return path, f"unknown field(s) for {_short(schema)}: {', '.join(unknown)}"
    for field in fields:
        name = field["name"]
        where = f"{path}.{name}" if path else name
        if name not in value:
            if "default" in field:
                continue
            return where, "missing required field"
        problem = find_problem(definitions, field["type"], value[name], where)
        if problem:
            return problem
    return None


def _union(definitions: Mapping[str, Schema], branches: list[Any], value: object, path: str) -> Problem | None:
    candidates = [b for b in branches if b != "null"] if value is not None else branches
    problems = []
    for branch in candidates:
        problem = find_problem(definitions, branch, value, path)
        if problem is None:
            return None
        problems.append((branch, problem))
    if len(problems) == 1:  # e.g. ["null", X] with a non-null value: X's own complaint is the useful one
        return problems[0][1]
    if isinstance(value, Mapping):  # records: blame the branch the value resembles most
        scored = [
            (len(set(value) & {f["name"] for f in definitions[b]["fields"]}), problem)
            for b, problem in problems
            if isinstance(b, str) and "fields" in definitions.get(b, {})
        ]
        if scored:
            return max(scored, key=lambda pair: pair[0])[1]
    names = " | ".join(b.rpartition(".")[2] if isinstance(b, str) else str(b.get("type")) for b in branches)
    return path, f"expected {names}, got {_show(value)}"


def _short(schema: Schema) -> str:
    return str(schema.get("name", schema["type"])).rpartition(".")[2]


def _show(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"
