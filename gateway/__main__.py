"""`python -m gateway`: serve the HTTP API until SIGTERM or Ctrl-C (graceful: in-flight requests
finish, Kafka clients flush and close). A bad setting prints one line per bad flag or variable
and exits with status 2."""

from __future__ import annotations

import asyncio
import logging
import sys

from gateway import config as gateway_config
from gateway import logging_context
from gateway.app import GUARD, create_app
from gateway.read_model import StateDirError
from gateway.server import serve
from observability import json_logging, tracing

log = logging.getLogger("gateway")


def main(argv: list[str] | None = None) -> int:
    try:
        config = gateway_config.load(argv)
        tracing.configure("gateway", config.trace_exporter)
    except (gateway_config.ConfigError, tracing.TracingConfigError) as error:
        for line in getattr(error, "lines", None) or (str(error),):
            print(f"python -m gateway: {line}", file=sys.stderr)
        return 2
    json_logging.configure("gateway", config.log_level)
    logging_context.install()
    log.info("starting gateway %s", config.described())
    if not config.webhook_secrets:
        log.warning("no webhook secret configured (GATEWAY_WEBHOOK_SECRETS): every webhook call will get 401")
    try:
        app = create_app(config)
    except StateDirError as error:
        print(f"python -m gateway: GATEWAY_STATE_DIR: {error}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(app, config, app[GUARD]))
    finally:
        tracing.shutdown()
    log.info("gateway stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
