"""Fixtures of the processor tests; makes `processor_testkit` importable in any import mode."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.append(_HERE)

from processor_fixtures import harness  # noqa: E402,F401
