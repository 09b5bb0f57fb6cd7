"""`python -m fix_adapter`: the FIX 4.4 OMS adapter, until SIGTERM or Ctrl-C.

Consumes `trade-tickets` (read_committed), holds one FIX initiator session per counterparty,
publishes `order-events` (keyed by execution_id, murmur2) in Kafka transactions with its own
state. See docs/fix.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from fix_adapter.config import AdapterConfig, AdapterTopics, ConfigError, parse_counterparties
from fix_adapter.service import AdapterFatalError, FixAdapter
from kafka_client import settings as kafka_settings
from observability import json_logging
from observability.ops_server import OpsServer

log = logging.getLogger("fix_adapter")


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m fix_adapter", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    kafka_settings.add_arguments(parser)
    parser.add_argument("--counterparty", action="append", default=[], metavar="name=..,host=..,port=..,sender=..,target=..",
                        help="a FIX counterparty (repeatable; env FIX_COUNTERPARTIES, ';'-separated). Optional keys: "
                             "heartbeat=SECONDS, tickets=SECURITY_ORDER+FX_SPOT_ORDER, reset_on_logon=y")
    parser.add_argument("--adapter-id", default=env("FIX_ADAPTER_ID", "fix-adapter"),
                        help="consumer group, transactional id and state topic prefix (env FIX_ADAPTER_ID)")
    parser.add_argument("--tickets-topic", default=env("TOPIC_TRADE_TICKETS", "trade-tickets"))
    parser.add_argument("--order-events-topic", default=env("TOPIC_ORDER_EVENTS", "order-events"))
    parser.add_argument("--dead-letters-topic", default=env("TOPIC_DEAD_LETTERS", "dead-letters"))
    parser.add_argument("--state-topic", default=env("FIX_ADAPTER_STATE_TOPIC", ""),
                        help="compacted topic of the adapter's own state (default <adapter-id>.state)")
    parser.add_argument("--status-after-s", type=float, default=float(env("FIX_STATUS_AFTER_S", "60")),
                        help="send OrderStatusRequest for an open order with no report for this long (env FIX_STATUS_AFTER_S)")
    parser.add_argument("--http-host", default=env("FIX_ADAPTER_HTTP_HOST", "127.0.0.1"))
    parser.add_argument("--http-port", type=int, default=int(env("FIX_ADAPTER_HTTP_PORT", "9465")),
                        help="/metrics, /healthz, /readyz (0: any free port)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    json_logging.configure("fix_adapter")
    try:
        counterparties = parse_counterparties(args.counterparty, os.environ)
    except ConfigError as error:
        raise SystemExit(f"fix_adapter: {error}") from None
    config = AdapterConfig(
        kafka=kafka_settings.from_arguments(args), counterparties=counterparties, adapter_id=args.adapter_id,
        topics=AdapterTopics(args.tickets_topic, args.order_events_topic, args.dead_letters_topic, args.state_topic),
        status_after_s=args.status_after_s, http_host=args.http_host, http_port=args.http_port,
    )
    adapter = FixAdapter(config)
    ops = OpsServer(adapter.metrics.registry, adapter.health, adapter.readiness, config.http_host, config.http_port).start()
    log.info("FIX adapter %s: /metrics on %s:%d; counterparties %s", config.adapter_id, config.http_host, ops.port,
             ", ".join(f"{c.name} {c.host}:{c.port}" for c in counterparties))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        adapter.run(stop.is_set)
    except AdapterFatalError as error:
        log.error("stopping: %s", error)
        return 2
    finally:
        ops.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
