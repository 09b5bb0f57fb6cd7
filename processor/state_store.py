"""The local state store: one RocksDB database (rocksdict) per assigned input partition.

Keys and values are bytes. Writes arrive in batches, once per committed Kafka transaction,
together with the changelog position they correspond to, so a store always knows from which
changelog offset to resume. A store that cannot be opened is destroyed and rebuilt from the
changelog; one that belongs to another changelog topic is treated the same way.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

from rocksdict import Options, Rdict, WriteBatch

log = logging.getLogger(__name__)

# Reserved keys start with a NUL byte, which no domain key does.
_META_CHANGELOG = b"\x00meta/changelog"
_META_NEXT_OFFSET = b"\x00meta/changelog-next-offset"


def _options() -> Options:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    return options


class PartitionStore:
    """State of one partition index, plus the changelog offset it is current up to."""

    def __init__(self, path: Path, changelog: str, partition: int) -> None:
        self.path = path
        self.changelog = changelog
        self.partition = partition
        self.rebuilt = False
        self._db = self._open_or_rebuild()

    # -- reads -------------------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        return self._db.get(key)

    def items(self, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        for key, value in self._db.items(from_key=prefix):
            if not key.startswith(prefix):
                break
            if not key.startswith(b"\x00"):
                yield key, value

    @property
    def changelog_next_offset(self) -> int:
        """The first changelog offset not yet reflected in this store (0 for a new store)."""
        raw = self._db.get(_META_NEXT_OFFSET)
        return int(raw) if raw is not None else 0

    # -- writes ------------------------------------------------------------------------

    def write_batch(self, writes: Mapping[bytes, bytes | None], changelog_next_offset: int) -> None:
        """Apply `writes` (None deletes) and move the checkpoint, atomically."""
        batch = WriteBatch(raw_mode=True)
        for key, value in writes.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        batch.put(_META_NEXT_OFFSET, str(changelog_next_offset).encode())
        self._db.write(batch)

    def close(self) -> None:
        self._db.close()

    def reset(self) -> None:
        """Throw away everything (the changelog is the source of truth) and start empty."""
        self._db.close()
        self._db = self._recreate(f"{self.changelog}/{self.partition}".encode())

    # -- internals ---------------------------------------------------------------------

    def _open_or_rebuild(self) -> Rdict:
        marker = f"{self.changelog}/{self.partition}".encode()
        try:
            db = Rdict(str(self.path), _options())
        except Exception as error:  # rocksdict raises plain exceptions on corruption
            log.warning("state store %s cannot be opened (%s); rebuilding from changelog", self.path, error)
            return self._recreate(marker)
        owner = db.get(_META_CHANGELOG)
        if owner is None and db.get(_META_NEXT_OFFSET) is None:
            db.put(_META_CHANGELOG, marker)
            return db
        if owner != marker:
            log.warning("state store %s belongs to %r, not %r; rebuilding", self.path, owner, marker)
            db.close()
            return self._recreate(marker)
        return db

    def _recreate(self, marker: bytes) -> Rdict:
        self.rebuilt = True
        shutil.rmtree(self.path, ignore_errors=True)
        db = Rdict(str(self.path), _options())
        db.put(_META_CHANGELOG, marker)
        return db
