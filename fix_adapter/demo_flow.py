"""`bin/demo --oms fix`: the demo's flow through the FIX adapter and QuickFIX/J's Executor.

`start_fix_oms(demo)` starts the Executor (market orders only, so a LIMIT order is refused as a
real venue would) and the adapter as one of the demo's services; `run_fix_scenarios(demo, oms)`
creates the executions through the gateway, prints the timeline, checks each final state, and
prints the FIX traffic summary from the adapter's /metrics. The demo's own code calls these two
and nothing else (demo/run.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from fix_adapter.launch import CounterpartyAddress, traffic_summary
from local_fix.executor import ExecutorSettings, LocalFixExecutor
from local_kafka.broker import free_loopback_port


class DemoLike(Protocol):
    """What this module uses of `demo.run.Demo`."""

    application_id: str
    services: Any

    def http(self, method: str, path: str, body: dict[str, Any] | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any]: ...

    def show_tickets(self, created: dict[str, Any]) -> None: ...

    def follow(self, execution_id: str, done: Any = None, timeout_s: float = 60) -> list[Any]: ...

    def show_final(self, snapshot: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class FixScenario:
    sample: str
    title: str
    order_type: str
    expected: str
    dependants_held: bool = False  # the tickets after a refused one are never released


FIX_SCENARIOS = (
    FixScenario("rfc_accept_all", "FIX: SELL, FX and BUY as FIX orders, in dependency order", "MARKET", "FILLED"),
    FixScenario("sgd_multi_currency", "FIX: SGD portfolio through the Executor", "MARKET", "FILLED"),
    FixScenario("rfc_fx_reject", "FIX: a LIMIT order the Executor refuses (session-level Reject)", "LIMIT",
                "REJECTED", dependants_held=True),
)


@dataclass
class FixOms:
    executor: LocalFixExecutor
    http_port: int

    def metrics_text(self) -> str:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=5) as response:
            text: str = response.read().decode()
            return text

    def close(self) -> None:
        self.executor.stop()


def start_fix_oms(demo: DemoLike, timeout_s: float = 60) -> FixOms:
    """The Executor on a free loopback port and the adapter as a demo service, logged on."""
    import urllib.request

    executor = LocalFixExecutor(ExecutorSettings(target_comp_id="ADAPTER", valid_order_types="1")).start()
    assert executor.port is not None
    counterparty = CounterpartyAddress("EXEC", executor.host, executor.port, "ADAPTER", "EXEC")
    http_port = free_loopback_port()
    demo.services.start("fix-adapter", "fix_adapter", "--adapter-id", f"{demo.application_id}-fix",
                        "--http-port", str(http_port), "--counterparty", counterparty.flag())
    deadline = time.monotonic() + timeout_s
    while True:
        demo.services.check_alive()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            executor.stop()
            raise RuntimeError("the FIX adapter did not log on to the Executor")
        time.sleep(0.2)
    print(f"QuickFIX/J Executor {executor.quickfixj_version} (pid {executor.pid}) at {executor.host}:{executor.port}; "
          "the FIX adapter logged on")
    return FixOms(executor, http_port)


def run_fix_scenarios(demo: DemoLike, oms: FixOms, load: Any) -> bool:
    ok = True
    for scenario in FIX_SCENARIOS:
        ok &= _run(demo, scenario, load(scenario.sample))
    print("\n== FIX traffic (the adapter's /metrics)")
    for line in traffic_summary(oms.metrics_text()):
        print("   " + line)
    return ok


def _run(demo: DemoLike, scenario: FixScenario, raw: dict[str, Any]) -> bool:
    print(f"\n== {scenario.title}")
    print(f"   proposal {raw['proposal_id']} v{raw['version_no']}, order type {scenario.order_type}")
    body = {
        "proposal_id": raw["proposal_id"], "version_no": raw["version_no"],
        "execution_policy": {"time_in_force": "DAY", "order_type": scenario.order_type, "allow_partial_fills": True,
                             "max_slippage_bps": "25", "dry_run": False},
        "actor": {"requested_by": "advisor_001", "channel": "ADVISOR_APP"},
    }
    key = f"{demo.application_id}-fix-{scenario.sample}"
    deadline = time.monotonic() + 30
    while True:
        status, created = demo.http("POST", "/rebalance/executions", body, {"Idempotency-Key": key})
        if status != 404 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if status not in (200, 201, 202):
        print(f"   create failed: HTTP {status} {created}")
        return False
    execution_id = created["execution_id"]
    print(f"   POST /rebalance/executions -> {status} {execution_id} ({created.get('status')})")
    demo.show_tickets(created)
    changes = demo.follow(execution_id)
    if not changes:
        print("   no state change seen")
        return False
    last = changes[-1].snapshot
    demo.show_final(last)
    ok = bool(last["status"] == scenario.expected)
    print(f"   expected {scenario.expected}: {'ok' if ok else 'NOT MET'}")
    if scenario.dependants_held:
        refused = [t for t in last["tickets"] if t["status"] == "REJECTED"]
        held = all(not t["released"] for t in last["tickets"] if t["status"] != "REJECTED")
        reason = refused[0]["reason"] if refused else None
        print(f"   refused with the Executor's text: {str(reason).removeprefix('session Reject by EXEC: ')}")
        print(f"   tickets after the refused ones never sent: {'ok' if held else 'NOT MET'}")
        ok &= held and bool(reason) and "field=40" in str(reason)
    return ok
