"""Schema directories for evolution tests: a copy of schemas/ with a synthetic next version released.

`evolved_schema_dir(path)` copies the current schemas (with their history) and applies the changes
docs/wire.md allows, then releases them as the next version of every topic schema they touch, the
way a developer would (`wire.history.release`):

- an added optional field: `OrderEvent.details.venue`, `ExecutionStateChange.origin`,
  `ExecutionSnapshot.note` (so command results too), `TicketInstruction.note`, `DeadLetter.replay_hint`,
  `AdmissionRequest.note`, `AdmissionDecision.note`. Not `ApprovedProposal` nor `ExecutionPolicy`: the
  domain validates those strictly (unknown fields refused; the artifact hash covers every field), so a
  field added there comes with its domain change in the same release (docs/wire.md);
- a removed field that had a default: `OrderEvent.external_order_id`;
- a new enum symbol where the reader has a default: `CommandType` gains `PAUSE_EXECUTION`, with the
  enum default `CREATE_EXECUTION` (execution-commands follows BACKWARD_TRANSITIVE, see docs/wire.md).

`full=True` leaves the enum change out: what remains is FULL compatible, so readers of the current
version can read records of the next one once they know its schema (released ahead).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wire.history import release
from wire.schemas import default_dir

OPTIONAL_STRING: dict[str, Any] = {"type": ["null", "string"], "default": None}


def copy_schema_dir(target: Path, source: Path | None = None) -> Path:
    shutil.copytree(source or default_dir(), target, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    return target


def edit(directory: Path, name: str, change: Callable[[dict[str, Any]], None]) -> None:
    path = directory / f"{name}.avsc"
    schema = json.loads(path.read_text())
    change(schema)
    path.write_text(json.dumps(schema, indent=2) + "\n")


def field(record: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in record["fields"] if f["name"] == name)


def add_after(record: dict[str, Any], after: str, new_field: dict[str, Any]) -> None:
    position = next(i for i, f in enumerate(record["fields"]) if f["name"] == after)
    record["fields"].insert(position + 1, new_field)


def optional(name: str) -> dict[str, Any]:
    return {"name": name, **OPTIONAL_STRING, "doc": f"Synthetic next-version field {name}."}


def evolve(directory: Path, *, full: bool = False) -> Path:
    """Apply the synthetic next version to a schema directory and release it."""

    def order_event(schema: dict[str, Any]) -> None:
        field(schema, "details")["type"]["fields"].append(optional("venue"))
        schema["fields"].remove(field(schema, "external_order_id"))

    def state_change(schema: dict[str, Any]) -> None:
        add_after(schema, "correlation_id", optional("origin"))  # not last: the snapshot stays the last field

    def command(schema: dict[str, Any]) -> None:
        command_type = field(schema, "command_type")["type"]
        command_type["symbols"].append("PAUSE_EXECUTION")
        command_type["default"] = "CREATE_EXECUTION"

    edit(directory, "OrderEvent", order_event)
    edit(directory, "ExecutionStateChange", state_change)
    edit(directory, "ExecutionSnapshot", lambda s: add_after(s, "request_hash", optional("note")))
    edit(directory, "AdmissionRequest", lambda s: s["fields"].append(optional("note")))
    edit(directory, "AdmissionDecision", lambda s: s["fields"].append(optional("note")))
    edit(directory, "TicketInstruction", lambda s: s["fields"].append(optional("note")))
    edit(directory, "DeadLetter", lambda s: s["fields"].append(optional("replay_hint")))
    if not full:
        edit(directory, "ExecutionCommand", command)
    release(directory)
    return directory


def evolved_schema_dir(target: Path, *, full: bool = False) -> Path:
    return evolve(copy_schema_dir(target), full=full)


def ahead_schema_dir(target: Path, evolved: Path) -> Path:
    """The current schemas with the next version's history released ahead: what readers deploy
    first so that they can read records of the next version (single-object encoding has no
    registry to fetch an unknown writer schema from)."""
    copy_schema_dir(target)
    shutil.rmtree(target / "history")
    shutil.copytree(evolved / "history", target / "history")
    return target

