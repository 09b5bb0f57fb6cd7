"""`python -m mock_oms`: a mock OMS on the Kafka contract, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from kafka_client import settings as kafka_settings
from mock_oms.engine import Faults, MockOmsEngine
from mock_oms.scenarios import SCENARIOS, ScenarioBook
from mock_oms.service import KafkaDelivery, MockOmsService, WebhookDelivery
from observability import json_logging


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mock_oms", description=__doc__)
    kafka_settings.add_arguments(parser)
    parser.add_argument("--tickets-topic", default=os.environ.get("TOPIC_TRADE_TICKETS", "trade-tickets"))
    parser.add_argument("--order-events-topic", default=os.environ.get("TOPIC_ORDER_EVENTS", "order-events"))
    parser.add_argument("--group-id", default="mock-oms")
    parser.add_argument("--seed", type=int, default=7, help="same seed, same answers")
    parser.add_argument("--default-scenario", default="accept_and_fill", choices=sorted(SCENARIOS))
    parser.add_argument("--scenario", action="append", default=[], metavar="PROPOSAL_ID=NAME",
                        help="scenario for one proposal's orders (repeatable)")
    parser.add_argument("--latency-ms", default="20,120", help="MIN,MAX simulated latency per report")
    parser.add_argument("--duplicate-rate", type=float, default=0.0, help="chance a report is sent twice")
    parser.add_argument("--reorder-rate", type=float, default=0.0, help="chance two reports swap places")
    parser.add_argument("--delivery", choices=("kafka", "webhook"), default="kafka",
                        help="publish order events to Kafka, or POST them to the gateway's signed webhook")
    parser.add_argument("--gateway-url", default=os.environ.get("MOCK_OMS_GATEWAY_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--webhook-secret", default=os.environ.get("MOCK_OMS_WEBHOOK_SECRET"),
                        help="HMAC secret shared with the gateway (env MOCK_OMS_WEBHOOK_SECRET)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    json_logging.configure("mock_oms")
    low, high = (int(part) for part in args.latency_ms.split(","))
    engine = MockOmsEngine(
        ScenarioBook.parse(args.default_scenario, args.scenario), seed=args.seed, latency_ms=(low, high),
        faults=Faults(args.duplicate_rate, args.reorder_rate),
    )
    base = kafka_settings.from_arguments(args).base_config()
    if args.delivery == "webhook":
        if not args.webhook_secret:
            raise SystemExit("--delivery webhook needs --webhook-secret or MOCK_OMS_WEBHOOK_SECRET")
        delivery: KafkaDelivery | WebhookDelivery = WebhookDelivery(args.gateway_url, args.webhook_secret)
    else:
        delivery = KafkaDelivery(base, args.order_events_topic)
    service = MockOmsService(base, tickets_topic=args.tickets_topic, group_id=args.group_id, engine=engine,
                             deliver=delivery)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    service.run(stop.is_set)
    delivery.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
