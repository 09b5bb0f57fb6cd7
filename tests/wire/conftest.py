"""Pytest wiring of the example records in wire/examples.py."""

from __future__ import annotations

from typing import Any

import pytest

from wire.examples import SAMPLES


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sample" in metafunc.fixturenames:
        metafunc.parametrize(
            "sample", [(name, record) for name, _, record in SAMPLES],
            ids=[f"{name}-{label}" for name, label, _ in SAMPLES],
        )


@pytest.fixture
def samples_by_schema() -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for name, _, record in SAMPLES:
        grouped.setdefault(name, []).append(record)
    return grouped
