"""The FIX adapter's integration tests: a real broker, a real processor (`testkit.processor`),
the adapter as its own process (`testkit.fix_rig`), and as counterparty QuickFIX/J's Executor
(`local_fix`) or the scripted acceptor (`testkit.fix_acceptor`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from local_fix.executor import ExecutorSettings, LocalFixExecutor
from testkit.fix_rig import FixRig
from testkit.processor import ProcessorHarness


@pytest.fixture
def rig(harness: ProcessorHarness, tmp_path: Path) -> Iterator[FixRig]:
    rig = FixRig(harness, tmp_path)
    yield rig
    rig.close()


@pytest.fixture
def make_executor() -> Iterator[Callable[..., LocalFixExecutor]]:
    started: list[LocalFixExecutor] = []

    def make(**settings: Any) -> LocalFixExecutor:
        executor = LocalFixExecutor(ExecutorSettings(target_comp_id="ADAPTER", **settings)).start()
        started.append(executor)
        return executor

    yield make
    for executor in started:
        executor.stop()
