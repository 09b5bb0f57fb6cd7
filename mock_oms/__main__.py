"""`python -m mock_oms`: a mock OMS on the Kafka contract, until SIGTERM or Ctrl-C.

Consumes trade-tickets (read_committed) and answers every order with the reports its proposal's
scenario scripts (accept, fills, rejects, cancels), after a simulated latency, on order-events
or through the gateway's signed webhook. Prints one line per report it sends (--quiet: none).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from execution_domain import OrderEvent
from kafka_client import settings as kafka_settings
from mock_oms.engine import Faults, MockOmsEngine
from mock_oms.scenarios import SCENARIOS, ScenarioBook
from mock_oms.service import KafkaDelivery, MockOmsService, WebhookDelivery
from observability import json_logging


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mock_oms", description=__doc__,
                                     formatter_class=_HelpFormatter)
    kafka_settings.add_arguments(parser)
    parser.add_argument("--tickets-topic", default=os.environ.get("TOPIC_TRADE_TICKETS", "trade-tickets"),
                        help="where the processor releases tickets (env TOPIC_TRADE_TICKETS)")
    parser.add_argument("--order-events-topic", default=os.environ.get("TOPIC_ORDER_EVENTS", "order-events"),
                        help="where reports go with --delivery kafka (env TOPIC_ORDER_EVENTS)")
    parser.add_argument("--group-id", default="mock-oms",
                        help="consumer group; a restart with the same group resumes after the tickets it read")
    parser.add_argument("--seed", type=int, default=7, help="same seed, same answers")
    parser.add_argument("--default-scenario", default="accept_and_fill", choices=sorted(SCENARIOS),
                        help="scenario for proposals no --scenario names")
    parser.add_argument("--scenario", action="append", default=[], metavar="PROPOSAL_ID=NAME",
                        help="scenario for one proposal's orders (repeatable); NAME is one of the above")
    parser.add_argument("--latency-ms", default="20,120", help="MIN,MAX simulated latency per report")
    parser.add_argument("--duplicate-rate", type=float, default=0.0, help="chance a report is sent twice")
    parser.add_argument("--reorder-rate", type=float, default=0.0, help="chance two reports swap places")
    parser.add_argument("--delivery", choices=("kafka", "webhook"), default="kafka",
                        help="publish order events to Kafka, or POST them to the gateway's signed webhook")
    parser.add_argument("--gateway-url", default=os.environ.get("MOCK_OMS_GATEWAY_URL", "http://127.0.0.1:8080"),
                        help="the gateway --delivery webhook POSTs to (env MOCK_OMS_GATEWAY_URL)")
    parser.add_argument("--webhook-secret", default=os.environ.get("MOCK_OMS_WEBHOOK_SECRET"),
                        help="HMAC secret shared with the gateway (env MOCK_OMS_WEBHOOK_SECRET)")
    parser.add_argument("--quiet", action="store_true", help="print nothing per report (logs still go to stderr)")
    return parser


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The description as written, and every flag's default."""


def describe_report(event: OrderEvent) -> str:
    """One line per report sent, e.g. `-> PARTIAL_FILL tkt_5b0a0e1d4f21 (exec_...) fill 4500 @ 164.78`."""
    details = event.details
    what = ""
    if details.last_qty is not None:
        what = f" fill {details.last_qty} @ {details.last_price}"
    elif details.filled_qty is not None:
        what = f" cumulative {details.filled_qty} @ {details.avg_price}"
    if details.reason:
        what += f" ({details.reason})"
    return f"-> {event.event_type.value:<15} {event.ticket_id} {event.event_id} ({event.execution_id}){what}"


class _Printing:
    """Wraps a delivery: prints each report once it was handed over."""

    def __init__(self, deliver: KafkaDelivery | WebhookDelivery) -> None:
        self._deliver = deliver

    def __call__(self, event: OrderEvent, trace: list[tuple[str, bytes]] | None = None) -> None:
        self._deliver(event, trace)
        print(describe_report(event), flush=True)

    def flush(self) -> None:
        self._deliver.flush()


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
                             deliver=delivery if args.quiet else _Printing(delivery))
    target = args.gateway_url if args.delivery == "webhook" else args.order_events_topic
    print(f"mock OMS: reading {args.tickets_topic} as group {args.group_id}, answering on {target}; "
          f"scenarios: {', '.join(args.scenario) or 'none'} (default {args.default_scenario}); "
          f"duplicates {args.duplicate_rate:g}, reorders {args.reorder_rate:g}; Ctrl-C stops it", flush=True)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    service.run(stop.is_set)
    delivery.flush()
    print(f"mock OMS stopped: {service.instructions_handled} instructions handled, {service.events_sent} reports sent",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
