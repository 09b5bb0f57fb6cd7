"""Every released version of each topic's value schema, kept so that any past writer stays readable.

Layout, inside the schema directory (`schemas/`, or WIRE_SCHEMA_DIR):

    history/versions.json              {"OrderEvent": {"1": "<CRC-64-AVRO fingerprint, hex>"}, ...}
    history/OrderEvent/v1.avsc         the self-contained schema of that version (named types inline)

A released file never changes: its fingerprint is in `versions.json`, and loading fails if the
file no longer matches it. The current `*.avsc` files must match one released version of each
topic schema (normally the newest); `python -m wire.history release` writes a new version for
every topic schema whose current definition matches none, and `python -m wire.history check`
lists what is out of step. A version may be released before writers use it: readers then know
its fingerprint already (see docs/wire.md, "Evolving a schema").

Two versions that differ only in `doc` are the same version: docs never reach the wire.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastavro.schema import fingerprint, to_parsing_canonical_form

from wire.errors import SchemaError
from wire.schemas import SchemaSet, WireSchema, default_dir, load
from wire.topics import TOPICS

HISTORY_DIR = "history"
MANIFEST = "versions.json"


@dataclass(frozen=True)
class SchemaVersion:
    """One released version of a topic's value schema."""

    name: str  # simple name, e.g. "OrderEvent"
    version: int
    schema: dict[str, Any]  # self-contained JSON, as released
    canonical_form: str
    fingerprint: bytes  # CRC-64-AVRO of the canonical form, little-endian: the single-object header bytes
    path: Path

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"


def history_dir(directory: Path | None = None) -> Path:
    return (directory or default_dir()) / HISTORY_DIR


def fingerprint_of(schema: Mapping[str, Any]) -> tuple[str, bytes]:
    """(Parsing Canonical Form, CRC-64-AVRO fingerprint bytes) of a self-contained schema."""
    canonical = to_parsing_canonical_form(dict(schema))
    return canonical, bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))


def topic_schema_names() -> tuple[str, ...]:
    return tuple(dict.fromkeys(topic.value_schema for topic in TOPICS))


def read_manifest(directory: Path | None = None) -> dict[str, dict[str, str]]:
    path = history_dir(directory) / MANIFEST
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SchemaError(f"{path}: cannot read the schema history: {exc}") from exc
    if not isinstance(manifest, dict):
        raise SchemaError(f"{path}: expected an object of schema name -> version -> fingerprint")
    return manifest


def load_history(directory: Path | None = None) -> dict[str, tuple[SchemaVersion, ...]]:
    """Every released version, by schema name, oldest first. A released file that no longer
    matches its recorded fingerprint is an error: released versions never change."""
    base = history_dir(directory)
    history: dict[str, tuple[SchemaVersion, ...]] = {}
    for name, versions in read_manifest(directory).items():
        loaded = []
        for number, recorded in sorted(versions.items(), key=lambda item: int(item[0])):
            path = base / name / f"v{int(number)}.avsc"
            try:
                schema = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise SchemaError(f"{path}: cannot read released schema {name} v{number}: {exc}") from exc
            canonical, actual = fingerprint_of(schema)
            if actual.hex() != recorded:
                raise SchemaError(
                    f"{path}: released schema {name} v{number} was changed after its release "
                    f"(fingerprint {actual.hex()}, released as {recorded}); release a new version instead"
                )
            loaded.append(SchemaVersion(name, int(number), schema, canonical, actual, path))
        history[name] = tuple(loaded)
    return history


def resolution_form(schema: object) -> str:
    """The schema without `doc`s, as sorted JSON: two schemas with the same form read and write alike."""

    def strip(node: object) -> object:
        if isinstance(node, dict):
            return {key: strip(value) for key, value in node.items() if key != "doc"}
        if isinstance(node, list):
            return [strip(item) for item in node]
        return node

    return json.dumps(strip(schema), sort_keys=True, separators=(",", ":"))


def matching_version(versions: Iterable[SchemaVersion], current: WireSchema) -> SchemaVersion | None:
    """The released version the current definition is (docs aside), if any; the newest if several."""
    form = resolution_form(current.schema)
    found = None
    for version in versions:
        if resolution_form(version.schema) == form:
            found = version
    return found


def release(directory: Path | None = None, names: Iterable[str] | None = None) -> list[SchemaVersion]:
    """Write a new version of every topic schema whose current definition matches no released one."""
    schemas = load(directory)
    history = load_history(directory)
    manifest = read_manifest(directory)
    released = []
    for name in names or topic_schema_names():
        current = schemas.compile(name)
        versions = history.get(name, ())
        if matching_version(versions, current) is not None:
            continue
        number = max((v.version for v in versions), default=0) + 1
        path = history_dir(directory) / name / f"v{number}.avsc"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(current.schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        manifest.setdefault(name, {})[str(number)] = current.fingerprint.hex()
        released.append(SchemaVersion(name, number, current.schema, current.canonical_form, current.fingerprint, path))
    if released:
        ordered = {n: dict(sorted(v.items(), key=lambda item: int(item[0]))) for n, v in sorted(manifest.items())}
        (history_dir(directory) / MANIFEST).write_text(json.dumps(ordered, indent=2) + "\n", encoding="utf-8")
    return released


def check(directory: Path | None = None) -> list[str]:
    """What is out of step between the current schemas and their history (empty when all is well)."""
    try:
        history = load_history(directory)
        schemas: SchemaSet = load(directory)
    except SchemaError as error:
        return [str(error)]
    problems = []
    for name in topic_schema_names():
        if matching_version(history.get(name, ()), schemas.compile(name)) is None:
            problems.append(
                f"{name}: the current schemas/*.avsc definition is not a released version; "
                f"run `python -m wire.history release` to add it as v{len(history.get(name, ())) + 1}"
            )
    recorded = {(v.name, v.path.name) for versions in history.values() for v in versions}
    base = history_dir(directory)
    for path in sorted(base.glob("*/*.avsc")) if base.exists() else []:
        if (path.parent.name, path.name) not in recorded:
            problems.append(f"{path}: not recorded in {MANIFEST}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wire.history", description="The schema history (docs/wire.md).")
    parser.add_argument("command", choices=("check", "release", "list"))
    parser.add_argument("--dir", type=Path, default=None, help="schema directory (default: WIRE_SCHEMA_DIR or schemas/)")
    args = parser.parse_args(argv)
    if args.command == "release":
        for version in release(args.dir):
            print(f"released {version.label} ({version.fingerprint.hex()}): {version.path}")
    elif args.command == "list":
        for name, versions in sorted(load_history(args.dir).items()):
            print(f"{name}: " + ", ".join(f"v{v.version} {v.fingerprint.hex()}" for v in versions))
    problems = check(args.dir)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
