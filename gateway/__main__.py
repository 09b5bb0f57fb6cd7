"""`python -m gateway`: serve the HTTP API until SIGTERM or Ctrl-C (graceful: in-flight requests
finish, Kafka clients flush and close)."""

from __future__ import annotations

import logging
import sys

from aiohttp import web

from gateway import config as gateway_config
from gateway import logging_context
from gateway.app import create_app
from observability import json_logging

log = logging.getLogger("gateway")


def main(argv: list[str] | None = None) -> int:
    config = gateway_config.load(argv)
    json_logging.configure("gateway", config.log_level)
    logging_context.install()
    log.info("starting gateway %s", config.described())
    if not config.webhook_secrets:
        log.warning("no webhook secret configured (GATEWAY_WEBHOOK_SECRETS): every webhook call will get 401")
    web.run_app(create_app(config), host=config.host, port=config.port, access_log=None, print=None,
                shutdown_timeout=10)
    log.info("gateway stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
