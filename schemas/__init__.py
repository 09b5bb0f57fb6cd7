"""The Avro contracts of every topic, shipped as package data (see docs/wire.md).

- `*.avsc`: the current version of every named type, one per file, referring to each other by name;
- `history/<Schema>/v<N>.avsc`: every released version of each topic's value schema, self-contained
  (every named type inline), with its fingerprint in `history/versions.json`.

`wire.schemas` and `wire.history` read them; this package only says where they are.
"""

from __future__ import annotations

from pathlib import Path

DIRECTORY = Path(__file__).resolve().parent
