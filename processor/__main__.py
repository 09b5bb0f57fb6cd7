"""`python -m processor`: run one processor instance until SIGTERM or Ctrl-C."""

from __future__ import annotations

import gc
import signal
import sys

from observability import json_logging
from processor import config as processor_config
from processor.app import ProcessorApp


def main(argv: list[str] | None = None) -> int:
    config = processor_config.load(argv)
    # The fold allocates many small, long-lived immutable objects (executions, log entries, cached
    # encodings): with CPython's default thresholds, full collections ran often and paused the
    # loop for up to ~100 ms, the tail of the event-to-state-change latency (docs/benchmarks.md).
    gc.set_threshold(50_000, 20, 100)
    json_logging.configure("processor", config.log_level)
    app = ProcessorApp(config)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: app.request_stop())
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
