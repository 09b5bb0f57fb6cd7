"""Fixtures of the processor tests; makes `processor_testkit` importable in any import mode."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.append(_HERE)

from processor_testkit import ProcessorHarness  # noqa: E402


@pytest.fixture
def harness(kafka_bootstrap: str, tmp_path: Path) -> Iterator[ProcessorHarness]:
    harness = ProcessorHarness(kafka_bootstrap, tmp_path)
    yield harness
    harness.close()
