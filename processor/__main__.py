"""`python -m processor`: run one processor instance until SIGTERM or Ctrl-C."""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import signal
import sys
import threading

from kafka_client.settings import ClientConfigError
from observability import json_logging, tracing
from processor import app as app_module
from processor import config as processor_config
from processor.app import ProcessorApp
from processor.runtime.store import StateDirLocked

_M_ARENA_MAX = -8  # glibc's mallopt parameter


def bound_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives threads that allocate (librdkafka's, RocksDB's) arenas of their own, up to eight
    per core, and hands little of them back: RSS creeps up under steady load. The loop is one thread;
    two arenas serve it and the libraries' threads (the soak in docs/benchmarks.md). Called before any
    thread starts; does nothing where libc has no mallopt (not glibc)."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, arenas)
    except (OSError, AttributeError):
        pass


_TRIM_INTERVAL_S = 30.0


def return_freed_memory_periodically(interval_s: float = _TRIM_INTERVAL_S) -> threading.Event | None:
    """RocksDB frees a memtable's blocks when it is flushed, librdkafka its buffers after each
    batch: freed inside glibc's heap, they stay in RSS while anything long-lived sits above them.
    `malloc_trim(0)` every `interval_s` hands the free pages back (on a daemon thread: the loop
    does not wait for the heap walk). Returns the event that stops it; does nothing (None) without
    glibc. Measured by the soak (docs/benchmarks.md)."""
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(interval_s):
            trim(0)

    threading.Thread(target=run, name="malloc-trim", daemon=True).start()
    return stop


def main(argv: list[str] | None = None) -> int:
    bound_malloc_arenas()
    return_freed_memory_periodically()
    try:
        config = processor_config.load(argv)
        app_module.producer_config(config), app_module.consumer_config(config)  # refused settings fail here
        if config.trace_exporter != "none":
            tracing.configure("processor", config.trace_exporter)
    except (processor_config.ConfigError, ClientConfigError, tracing.TracingConfigError) as error:
        lines = error.lines if isinstance(error, processor_config.ConfigError) else (str(error),)
        for line in lines:
            print(f"processor: {line}", file=sys.stderr)
        return 2
    # The fold allocates many small, long-lived immutable objects (executions, log entries, cached
    # encodings): with CPython's default thresholds, full collections ran often and paused the
    # loop for up to ~100 ms, the tail of the event-to-state-change latency (docs/benchmarks.md).
    gc.set_threshold(50_000, 20, 100)
    json_logging.configure("processor", config.log_level)
    for handler in logging.getLogger().handlers:  # trace ids on log lines (of a span or of the record handled)
        handler.addFilter(tracing.TraceContextFilter())
    app = ProcessorApp(config)

    def stop(*_: object) -> None:
        app.request_stop()
        # The loop checks the flag between bounded waits; whatever the broker does, the process
        # ends within the shutdown timeout (nothing of an open transaction lands either way).
        watchdog = threading.Timer(config.shutdown_timeout_s, _exit_now, (config.shutdown_timeout_s,))
        watchdog.daemon = True
        watchdog.start()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    try:
        app.run()
    except StateDirLocked as locked:
        print(f"processor: {locked}", file=sys.stderr)
        return 2
    finally:
        tracing.shutdown()
    return 0


def _exit_now(after_s: float) -> None:
    logging.getLogger("processor").error("still stopping after %.0fs (the broker unreachable?); exiting now", after_s)
    os._exit(1)


if __name__ == "__main__":
    sys.exit(main())
