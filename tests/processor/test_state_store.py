"""The per-partition RocksDB store: batched writes with a changelog checkpoint, and rebuilds."""

from __future__ import annotations

from pathlib import Path

from processor.runtime.store import PartitionStore


def test_write_batch_applies_puts_and_deletes_and_moves_the_checkpoint(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0", "changelog", 0)
    store.write_batch({b"x/a": b"1", b"x/b": b"2"}, 5)
    store.write_batch({b"x/a": None, b"y/c": b"3"}, 9)

    assert store.get(b"x/a") is None
    assert list(store.items(b"x/")) == [(b"x/b", b"2")]
    assert store.changelog_next_offset == 9
    store.close()


def test_new_store_starts_at_changelog_offset_zero(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0", "changelog", 0)
    assert store.changelog_next_offset == 0 and not store.rebuilt
    store.close()


def test_reopened_store_keeps_state_and_checkpoint(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0", "changelog", 3)
    store.write_batch({b"k": b"v"}, 42)
    store.close()

    reopened = PartitionStore(tmp_path / "p0", "changelog", 3)
    assert (reopened.get(b"k"), reopened.changelog_next_offset, reopened.rebuilt) == (b"v", 42, False)
    reopened.close()


def test_store_of_another_changelog_partition_is_rebuilt_empty(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0", "changelog", 0)
    store.write_batch({b"k": b"v"}, 42)
    store.close()

    foreign = PartitionStore(tmp_path / "p0", "changelog", 1)
    assert (foreign.get(b"k"), foreign.changelog_next_offset, foreign.rebuilt) == (None, 0, True)
    foreign.close()


def test_corrupt_store_is_rebuilt_empty(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0", "changelog", 0)
    store.write_batch({b"k": b"v"}, 42)
    store.close()
    (tmp_path / "p0" / "CURRENT").write_text("not a manifest name")

    rebuilt = PartitionStore(tmp_path / "p0", "changelog", 0)
    assert (rebuilt.get(b"k"), rebuilt.changelog_next_offset, rebuilt.rebuilt) == (None, 0, True)
    rebuilt.close()
