"""The mock OMS's tests drive a real processor: reuse the processor tests' kit."""

from __future__ import annotations

import sys
from pathlib import Path

_KIT = str(Path(__file__).resolve().parents[1] / "processor")
if _KIT not in sys.path:
    sys.path.append(_KIT)

from processor_fixtures import harness  # noqa: E402,F401
