"""The mock OMS's tests drive a real processor and gateway: reuse their tests' kits."""

from __future__ import annotations

import sys
from pathlib import Path

for _kit in ("processor", "gateway"):
    _path = str(Path(__file__).resolve().parents[1] / _kit)
    if _path not in sys.path:
        sys.path.append(_path)

from processor_fixtures import harness  # noqa: E402,F401
