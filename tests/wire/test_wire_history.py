"""The schema history: released versions are kept, checked against their fingerprints, and every
known writer version is read into the current reader schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from testkit.schema_evolution import ahead_schema_dir, copy_schema_dir, edit, evolved_schema_dir, field
from wire import history, serde
from wire.errors import DecodeError, SchemaError
from wire.examples import SAMPLES
from wire.history import load_history, topic_schema_names
from wire.schemas import default_dir, load

WHERE: dict[str, Any] = {"topic": "t", "partition": 0, "offset": 7}


def sample(name: str) -> dict[str, Any]:
    return next(record for schema, _, record in SAMPLES if schema == name)


def test_history_every_topic_schema_has_a_released_version_matching_the_current_definition() -> None:
    assert history.check() == []
    released = load_history()
    assert set(released) == set(topic_schema_names())
    schemas = load()
    for name in topic_schema_names():
        assert history.matching_version(released[name], schemas.compile(name)) is not None, name


def test_history_recorded_fingerprints_match_the_released_files() -> None:
    manifest = history.read_manifest()
    for name, versions in load_history().items():
        for version in versions:
            assert manifest[name][str(version.version)] == version.fingerprint.hex()


def test_history_released_file_edited_after_release_fails_loading_naming_the_file(tmp_path: Path) -> None:
    directory = copy_schema_dir(tmp_path / "schemas")
    path = directory / "history" / "OrderEvent" / "v1.avsc"
    schema = json.loads(path.read_text())
    schema["fields"].append({"name": "sneaky", "type": ["null", "string"], "default": None})
    path.write_text(json.dumps(schema))
    with pytest.raises(SchemaError, match=r"OrderEvent/v1.avsc: released schema OrderEvent v1 was changed"):
        load_history(directory)


def test_history_changed_current_schema_without_release_is_reported_with_the_command_to_run(tmp_path: Path) -> None:
    directory = copy_schema_dir(tmp_path / "schemas")
    edit(directory, "OrderEvent", lambda s: s["fields"].append({"name": "x", "type": ["null", "string"], "default": None,
                                                               "doc": "x"}))
    problems = history.check(directory)
    assert problems == [
        "OrderEvent: the current schemas/*.avsc definition is not a released version; "
        "run `python -m wire.history release` to add it as v2"
    ]


def test_history_doc_only_change_needs_no_new_version(tmp_path: Path) -> None:
    directory = copy_schema_dir(tmp_path / "schemas")
    edit(directory, "OrderEvent", lambda s: field(s, "source").update(doc="Reworded."))
    assert history.check(directory) == []
    assert history.release(directory) == []


def test_history_release_adds_the_next_version_of_every_changed_topic_schema(tmp_path: Path) -> None:
    directory = evolved_schema_dir(tmp_path / "next")
    released, before = load_history(directory), load_history(default_dir())
    changed = {name for name, versions in released.items() if len(versions) == len(before.get(name, ())) + 1}
    assert changed == set(topic_schema_names()) - {"ApprovedProposal"}
    assert history.check(directory) == []
    assert history.main(["check", "--dir", str(directory)]) == 0


@pytest.fixture(scope="module")
def evolved_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return evolved_schema_dir(tmp_path_factory.mktemp("evolved") / "schemas")


@pytest.fixture(scope="module")
def next_codecs(evolved_dir: Path) -> serde.Codecs:
    return serde.Codecs(evolved_dir)


def test_history_reader_of_the_next_version_reads_every_sample_written_with_the_current_one(
        next_codecs: serde.Codecs) -> None:
    for name, _, record in SAMPLES:
        old = serde.encode(name, record)
        decoded = next_codecs.codec(name).decode(old, **WHERE)
        assert decoded.keys() >= {k for k in record if not (name == "OrderEvent" and k == "external_order_id")}


def test_history_added_optional_field_takes_its_default_and_removed_field_is_dropped(next_codecs: serde.Codecs) -> None:
    event = next_codecs.codec("OrderEvent").decode(serde.encode("OrderEvent", sample("OrderEvent")), **WHERE)
    assert event["details"]["venue"] is None
    assert "external_order_id" not in event
    change = next_codecs.codec("ExecutionStateChange").decode(
        serde.encode("ExecutionStateChange", sample("ExecutionStateChange")), **WHERE)
    assert change["origin"] is None
    assert change["execution"]["note"] is None


def test_history_current_reader_reads_the_next_version_once_it_is_released_ahead(
        tmp_path: Path, evolved_dir: Path, next_codecs: serde.Codecs) -> None:
    evolved = next_codecs.codec("OrderEvent")
    record = {k: v for k, v in sample("OrderEvent").items() if k != "external_order_id"}
    record["details"] = {**record["details"], "venue": "XSES"}
    new = evolved.encode(record)
    with pytest.raises(DecodeError, match="unknown writer schema fingerprint"):
        serde.decode("OrderEvent", new, **WHERE)  # the current reader has never heard of v2
    ahead_dir = ahead_schema_dir(tmp_path / "ahead", evolved_dir)
    current_reader = serde.Codecs(ahead_dir).codec("OrderEvent")
    assert current_reader.fingerprint == serde.codec("OrderEvent").fingerprint  # still writes v1
    decoded = current_reader.decode(new, **WHERE)
    assert decoded["external_order_id"] is None  # removed by the writer: the reader's default
    assert "venue" not in decoded["details"]  # unknown to the reader: skipped


def test_history_unknown_fingerprint_still_fails_with_a_clear_reason(next_codecs: serde.Codecs) -> None:
    data = b"\xc3\x01" + bytes(8) + serde.encode("OrderEvent", sample("OrderEvent"))[10:]
    with pytest.raises(DecodeError) as caught:
        next_codecs.codec("OrderEvent").decode(data, **WHERE)
    assert caught.value.reason == "unknown writer schema fingerprint 0000000000000000"


def test_history_older_version_of_another_schema_is_named(next_codecs: serde.Codecs) -> None:
    old_dead_letter = serde.encode("DeadLetter", sample("DeadLetter"))
    with pytest.raises(DecodeError) as caught:
        next_codecs.codec("OrderEvent").decode(old_dead_letter, **WHERE)
    assert caught.value.reason == "written with schema DeadLetter, not OrderEvent"
    assert next_codecs.writer_schema(old_dead_letter) == "DeadLetter"


def test_history_negative_enum_index_in_an_older_writer_is_refused(next_codecs: serde.Codecs) -> None:
    old = bytearray(serde.encode("OrderEvent", {**sample("OrderEvent"), "event_id": "e", "execution_id": "x",
                                                "ticket_id": "t", "source": "s"}))
    # body: four 1-char strings (2 bytes each), then the event_type enum index (zig-zag varint)
    position = 10 + 4 * 2
    old[position] = 0x01  # zig-zag 1 = -1
    with pytest.raises(DecodeError, match="out of range"):
        next_codecs.codec("OrderEvent").decode(bytes(old), **WHERE)


def test_history_truncated_older_record_names_the_writer_version(next_codecs: serde.Codecs) -> None:
    old = serde.encode("OrderEvent", sample("OrderEvent"))
    with pytest.raises(DecodeError, match=r"truncated body.*\(writer schema OrderEvent v1\)"):
        next_codecs.codec("OrderEvent").decode(old[:-3], **WHERE)
