"""The `harness` fixture, shared by every test package that drives a real processor."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from processor_testkit import ProcessorHarness


@pytest.fixture
def harness(kafka_bootstrap: str, tmp_path: Path) -> Iterator[ProcessorHarness]:
    harness = ProcessorHarness(kafka_bootstrap, tmp_path)
    yield harness
    harness.close()
