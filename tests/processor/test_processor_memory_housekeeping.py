"""The processor process's glibc housekeeping (`python -m processor`'s start-up): arenas capped,
freed pages handed back on a timer. The effect on RSS is measured by the soak (docs/benchmarks.md);
these pin the calls."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import processor.__main__ as processor_main
from testkit.processor import wait_until


class _FakeLibc:
    def __init__(self) -> None:
        self.trims: list[int] = []
        self.mallopts: list[tuple[int, int]] = []

    def malloc_trim(self, pad: int) -> int:
        self.trims.append(pad)
        return 1

    def mallopt(self, parameter: int, value: int) -> int:
        self.mallopts.append((parameter, value))
        return 1


def test_freed_memory_is_handed_back_by_malloc_trim_on_a_daemon_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    libc = _FakeLibc()
    monkeypatch.setattr(processor_main.ctypes, "CDLL", lambda name: libc)

    stop = processor_main.return_freed_memory_periodically(interval_s=0.01)
    try:
        wait_until(lambda: len(libc.trims) >= 2, 5, what="two trims")
        assert set(libc.trims) == {0}
        trimmer = [thread for thread in threading.enumerate() if thread.name == "malloc-trim"]
        assert trimmer and all(thread.daemon for thread in trimmer), "the trimmer must not keep the process alive"
    finally:
        assert stop is not None
        stop.set()


def test_malloc_arenas_are_capped_at_two(monkeypatch: pytest.MonkeyPatch) -> None:
    libc = _FakeLibc()
    monkeypatch.setattr(processor_main.ctypes, "CDLL", lambda name: libc)

    processor_main.bound_malloc_arenas()

    assert libc.mallopts == [(-8, 2)]  # M_ARENA_MAX


def test_housekeeping_does_nothing_without_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_libc(name: str) -> Any:
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(processor_main.ctypes, "CDLL", no_libc)

    processor_main.bound_malloc_arenas()
    assert processor_main.return_freed_memory_periodically(interval_s=0.01) is None
