"""Fixtures of the gateway tests: a real processor (`testkit.processor`) and the
real gateway on a loopback port, shared by the end-to-end tests of a session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testkit.gateway import Stack, running_stack


@pytest.fixture(scope="session")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One processor and one gateway for the end-to-end tests; tests isolate themselves by
    using their own proposal ids and idempotency keys."""
    with running_stack(kafka_bootstrap, tmp_path_factory.mktemp("gateway-stack")) as running:
        yield running
