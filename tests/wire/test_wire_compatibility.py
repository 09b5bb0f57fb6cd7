"""The compatibility gate: every topic schema's released versions against each other, by the
topic's rule (docs/wire.md). It passes on the repository's schemas and fails, naming the field,
on an incompatible change."""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit.schema_evolution import copy_schema_dir, edit, evolved_schema_dir, field
from wire import compatibility, history
from wire.compatibility import RULES, Rule, check_history
from wire.topics import TOPICS


def test_compatibility_gate_every_released_version_of_every_topic_schema_follows_its_rule() -> None:
    problems = check_history()
    assert not problems, "\n".join(map(str, problems))


def test_compatibility_every_topic_has_a_rule() -> None:
    assert set(RULES) == {topic.kind for topic in TOPICS}


def test_compatibility_the_synthetic_next_version_passes_the_gate(tmp_path: Path) -> None:
    assert check_history(evolved_schema_dir(tmp_path / "next")) == []


def released(name: str) -> int:
    """How many versions of a schema are released today (the next one is this + 1)."""
    return len(history.load_history()[name])


def test_compatibility_new_enum_symbol_is_backward_only_and_named_when_the_rule_is_full(tmp_path: Path) -> None:
    directory = evolved_schema_dir(tmp_path / "next")
    problems = check_history(directory, {"ExecutionCommand": Rule.FULL_TRANSITIVE})
    new = released("ExecutionCommand") + 1
    assert sorted(str(p) for p in problems) == sorted(
        f"ExecutionCommand: v{old} cannot read v{new} (FORWARD): missing_enum_symbols at command_type (symbols) "
        "({'PAUSE_EXECUTION'})" for old in range(1, new))


def released_with(tmp_path: Path, name: str, change) -> Path:  # type: ignore[no-untyped-def]
    directory = copy_schema_dir(tmp_path / "schemas")
    edit(directory, name, change)
    history.release(directory)
    return directory


def test_compatibility_gate_fails_on_a_new_field_without_default_naming_the_field(tmp_path: Path) -> None:
    def add_required(schema: dict) -> None:  # type: ignore[type-arg]
        field(schema, "details")["type"]["fields"].append({"name": "venue", "type": "string", "doc": "Where."})

    problems = check_history(released_with(tmp_path, "OrderEvent", add_required))
    new = released("OrderEvent") + 1
    assert sorted(str(p) for p in problems) == sorted(
        f"OrderEvent: v{new} cannot read v{old} (BACKWARD): reader_field_missing_default_value at details.venue (venue)"
        for old in range(1, new))


def test_compatibility_gate_fails_on_a_removed_field_without_default_in_the_forward_direction(tmp_path: Path) -> None:
    problems = check_history(released_with(tmp_path, "OrderEvent", lambda s: s["fields"].remove(field(s, "source"))))
    new = released("OrderEvent") + 1
    assert sorted(str(p) for p in problems) == sorted(
        f"OrderEvent: v{old} cannot read v{new} (FORWARD): reader_field_missing_default_value at source (source)"
        for old in range(1, new))


def test_compatibility_gate_fails_on_a_changed_type_deep_in_a_nested_record(tmp_path: Path) -> None:
    def ticket_status_as_string(schema: dict) -> None:  # type: ignore[type-arg]
        ticket = field(schema, "tickets")["type"]["items"]
        ticket["fields"][ticket["fields"].index(field(ticket, "status"))] = {"name": "status", "type": "string",
                                                                            "doc": "Now free text."}

    problems = check_history(released_with(tmp_path, "ExecutionSnapshot", ticket_status_as_string))
    state_change = sorted(str(p) for p in problems if p.schema == "ExecutionStateChange")
    new = released("ExecutionStateChange") + 1
    assert state_change == sorted(
        [f"ExecutionStateChange: v{new} cannot read v{old} (BACKWARD): type_mismatch at execution.tickets[].status "
         "(reader type: string not compatible with writer type: enum)" for old in range(1, new)]
        + [f"ExecutionStateChange: v{old} cannot read v{new} (FORWARD): type_mismatch at execution.tickets[].status "
           "(reader type: enum not compatible with writer type: string)" for old in range(1, new)])


def test_compatibility_removed_enum_symbol_fails_backward_on_a_backward_topic(tmp_path: Path) -> None:
    problems = check_history(released_with(
        tmp_path, "ExecutionCommand", lambda s: field(s, "command_type")["type"]["symbols"].remove("CANCEL_EXECUTION")))
    new = released("ExecutionCommand") + 1
    assert sorted(str(p) for p in problems) == sorted(
        f"ExecutionCommand: v{new} cannot read v{old} (BACKWARD): missing_enum_symbols at command_type (symbols) "
        "({'CANCEL_EXECUTION'})" for old in range(1, new))


@pytest.mark.parametrize(("location", "path"), [
    ("/fields/7/type/fields/1", "details.last_qty"),
    ("/fields/4/type/symbols", "event_type (symbols)"),
    ("/", "<root>"),
])
def test_compatibility_field_path_translates_checker_locations(location: str, path: str) -> None:
    order_event = history.load_history()["OrderEvent"][0].schema
    assert compatibility.field_path(order_event, location) == path
