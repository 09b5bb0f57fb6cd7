"""`python -m processor`: run one processor instance until SIGTERM or Ctrl-C."""

from __future__ import annotations

import signal
import sys

from observability import json_logging
from processor import config as processor_config
from processor.app import ProcessorApp


def main(argv: list[str] | None = None) -> int:
    config = processor_config.load(argv)
    json_logging.configure("processor", config.log_level)
    app = ProcessorApp(config)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: app.request_stop())
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
