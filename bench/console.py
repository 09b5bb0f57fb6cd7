"""The operator console with a 1,000-ticket execution: time for the execution page to render the
dependency graph and the first page of lifecycle events in a real headless Chromium.

    .venv/bin/python -m bench.console              # 20 loads (about a minute with the set-up)
    .venv/bin/python -m bench.console --runs 50

Starts one broker (`local_kafka.select.kafka_broker`: KAFKA_BOOTSTRAP_SERVERS wins), a processor
and the gateway on loopback (`testkit.gateway.running_stack`), publishes a proposal of 1,000
tickets (500 SELLs in SGD; one FX funded by all of them; 249 SGD BUYs each after one SELL; 250
USD BUYs after the FX), creates its execution through the API, fills 200 SELLs through the
order-events topic (so the lifecycle has rows of every kind), then signs in with Debian's
Chromium through Playwright and loads the execution page `--runs` times. Each load is timed from
`page.goto` to the graph's nodes and the first events row being in the DOM (the `load` event has
fired by then: styles and script are in), wall clock in this process; the browser's own
navigation timing (time to first byte, DOMContentLoaded, load) is reported beside it.

Measured here, never asserted in a test (docs/console.md, docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import tempfile
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from execution_domain import EventDetails, OrderEvent, OrderEventType
from execution_domain.proposal import seal_artifact
from local_kafka.select import kafka_broker
from testkit.browser import headless_chromium, sign_in
from testkit.gateway import TOKEN, create_body, running_stack
from testkit.processor import T0, load_sample

SELLS, SGD_BUYS, USD_BUYS = 500, 249, 250


def thousand_ticket_proposal() -> dict[str, Any]:
    raw = copy.deepcopy(load_sample("sgd_multi_currency"))
    proposal_id = f"prop_console_bench_{uuid.uuid4().hex[:8]}"
    raw.update({"proposal_id": proposal_id, "version_no": 1, "portfolio_id": f"pf_{proposal_id}"})
    sells = [{"intent_type": "SECURITY_TRADE", "intent_id": f"oi_sell_{i:04d}", "dependencies": [],
              "instrument_id": f"SG_EQ_{i:04d}", "side": "SELL", "quantity": str(100 + i), "currency": "SGD",
              "indicative_price": "12.34"} for i in range(SELLS)]
    fx = {"intent_type": "FX_SPOT", "intent_id": "oi_fx_usd_sgd", "dependencies": [s["intent_id"] for s in sells],
          "pair": "USD/SGD", "buy_currency": "USD", "buy_amount": "250000", "sell_currency": "SGD",
          "sell_amount_estimated": "337500"}
    sgd_buys = [{"intent_type": "SECURITY_TRADE", "intent_id": f"oi_buy_sg_{i:04d}", "dependencies": [f"oi_sell_{i:04d}"],
                 "instrument_id": f"SG_REIT_{i:04d}", "side": "BUY", "quantity": "10", "currency": "SGD",
                 "indicative_price": "2.85"} for i in range(SGD_BUYS)]
    usd_buys = [{"intent_type": "SECURITY_TRADE", "intent_id": f"oi_buy_us_{i:04d}", "dependencies": ["oi_fx_usd_sgd"],
                 "instrument_id": f"US_EQ_{i:04d}", "side": "BUY", "quantity": "2", "currency": "USD",
                 "indicative_price": "512.4"} for i in range(USD_BUYS)]
    raw["trades_and_funding"] = {"funding_claimed": False, "intents": [*sells, fx, *sgd_buys, *usd_buys]}
    return seal_artifact(raw)


def fills(execution_id: str, tickets: list[dict[str, Any]], count: int) -> list[OrderEvent]:
    sells = [t for t in tickets if t.get("side") == "SELL"][:count]
    return [OrderEvent(event_id=f"bench-{t['ticket_id']}", execution_id=execution_id, ticket_id=t["ticket_id"],
                       source="bench", event_type=OrderEventType.FILLED, external_order_id=f"OMS-{t['ticket_id']}",
                       occurred_at=T0 + timedelta(minutes=5, milliseconds=n),
                       details=EventDetails(filled_qty=Decimal(t["order_quantity"]), avg_price=Decimal("12.30")))
            for n, t in enumerate(sells)]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.console", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="page loads to time (default 20)")
    parser.add_argument("--fills", type=int, default=200, help="SELLs filled before timing (default 200)")
    parser.add_argument("--screenshot", type=Path, help="also save a PNG of the page (e.g. docs/images/console-1000.png)")
    args = parser.parse_args(argv)
    with kafka_broker() as endpoint, tempfile.TemporaryDirectory(prefix="bench-console-") as work, \
            running_stack(endpoint.bootstrap_servers, Path(work)) as stack:
        proposal = thousand_ticket_proposal()
        stack.publish(proposal)
        created = stack.client.create(create_body(proposal), f"bench-console-{uuid.uuid4().hex}")
        assert created.status_code in (201, 202), created.text
        execution_id = created.json()["execution_id"]
        body = stack.wait_execution(execution_id, lambda b: len(b["tickets"]) == 1000, 120)
        stack.harness.send_events(fills(execution_id, body["tickets"], args.fills))
        body = stack.wait_execution(execution_id, lambda b: sum(t["status"] == "FILLED" for t in b["tickets"])
                                    >= args.fills, 120)
        events = body["event_count"]
        url = f"{stack.gateway.url}/console/executions/{execution_id}"
        wall: list[float] = []
        timing: list[dict[str, float]] = []
        with headless_chromium() as browser:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            sign_in(page, stack.gateway.url, TOKEN, f"/console/executions/{execution_id}")
            nodes = page.locator("svg g.node").count()
            for _ in range(args.runs):
                started = time.perf_counter()
                page.goto(url, wait_until="load")
                page.wait_for_selector("svg g.node", state="attached")
                page.wait_for_selector("#events tr", state="attached")
                wall.append((time.perf_counter() - started) * 1000)
                timing.append(page.evaluate("""() => { const n = performance.getEntriesByType('navigation')[0];
                    return {ttfb: n.responseStart - n.startTime, dcl: n.domContentLoadedEventEnd - n.startTime,
                            load: n.loadEventEnd - n.startTime, bytes: n.transferSize}; }"""))
            rows = page.locator("#events tr").count()
            if args.screenshot is not None:
                page.screenshot(path=str(args.screenshot), full_page=False)
    print(f"\nconsole bench: 1 execution of 1,000 tickets ({args.fills} filled, {events} lifecycle rows); the page "
          f"draws {nodes} graph nodes (collapsed) and {rows} events rows; {args.runs} loads; Chromium headless, "
          f"{platform.python_implementation()} {platform.python_version()}\n")
    print("| measure | median | p95 | max |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| page.goto to graph and first events page in the DOM (load fired), ms | {statistics.median(wall):.0f} | "
          f"{percentile(wall, 0.95):.0f} | {max(wall):.0f} |")
    for key, label in (("ttfb", "time to first byte (server renders the page), ms"),
                       ("dcl", "DOMContentLoaded, ms"), ("load", "load event end, ms")):
        values = [t[key] for t in timing]
        print(f"| {label} | {statistics.median(values):.0f} | {percentile(values, 0.95):.0f} | {max(values):.0f} |")
    print(f"| page size, KiB | {statistics.median([t['bytes'] for t in timing]) / 1024:.0f} | | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
