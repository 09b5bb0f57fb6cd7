"""The demo: the whole flow on a real broker, as its users would drive it.

Starts (or uses) a Kafka broker, then the processor, the gateway and the mock OMS as separate
processes; publishes the sample approved proposals (samples/proposals/) as the upstream
proposal system would; creates one execution per proposal through the HTTP API as an
advisor's app would; prints each execution's tickets with their dependencies, every state
change as it happens, and the final state. Then the guarantees act (demo.guarantees): a
cancel, a retried create, an OMS that duplicates and reorders its reports, and a processor
SIGKILLed mid-stream, each checked. It stops everything it started (unless --keep-running, then
on Ctrl-C). Exit status 0 means every execution ended as its scenario expects and every
guarantee held. Output lines fit 100 columns.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from demo.services import ROOT, Services
from demo.timeline import Watch, reached, say
from execution_domain import parse_artifact
from local_kafka.broker import free_loopback_port
from local_kafka.select import KafkaEndpoint, kafka_broker
from local_registry.select import REGISTRY_URL_ENV, schema_registry
from status_consumer.format import describe_final, describe_ticket
from wire import formats
from wire import records as translate
from wire.topics import TopicNames

SAMPLES = ROOT / "samples" / "proposals"


@dataclass(frozen=True)
class Scenario:
    sample: str  # also the scenario's name for --scenario
    title: str
    oms_behaviour: str  # a mock_oms scenario
    expected_statuses: tuple[str, ...]  # statuses the execution must pass through, the last one final


SCENARIOS = (
    Scenario("sgd_multi_currency", "SGD portfolio: sell SGD bonds, convert SGD to USD, buy a USD ETF",
             "seeded_mix", ("FILLED",)),
    Scenario("rfc_accept_all", "RFC 12.2: every ticket accepted and filled", "accept_and_fill", ("FILLED",)),
    Scenario("rfc_fx_reject", "RFC 12.2: the FX ticket is rejected", "reject_fx", ("REJECTED",)),
    Scenario("rfc_partial_then_fill", "RFC 12.2: partial fill, then fill", "partial_then_fill",
             ("PARTIALLY_FILLED", "FILLED")),
)
GUARANTEES = "guarantees"  # the act after the RFC scenarios (demo.guarantees)
GUARANTEES_SAMPLE = "usd_cash_flow_eur"
GUARANTEES_OMS = "partial_then_fill"


def load(sample: str) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads((SAMPLES / f"{sample}.json").read_text())
    return raw


class Demo:
    def __init__(self, bootstrap: str, work_dir: Path, scenarios: tuple[Scenario, ...] = SCENARIOS,
                 guarantees: bool = True) -> None:
        self.bootstrap = bootstrap
        self.scenarios = scenarios
        self.guarantees = guarantees
        self.run_id = uuid.uuid4().hex[:6]
        self.application_id = f"demo-{self.run_id}"
        prefix = f"{self.application_id}."
        defaults = TopicNames.defaults(self.application_id, {})
        # Topics of their own: the demo never touches a cluster's real topics.
        self.topics = TopicNames(**{
            f.name: name if (name := getattr(defaults, f.name)).startswith(prefix) else prefix + name
            for f in fields(TopicNames)
        })
        self.token = secrets.token_urlsafe(24)
        self.webhook_secret = secrets.token_urlsafe(24)
        self.gateway_port = free_loopback_port()
        self.work_dir = work_dir
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "PROCESSOR_APPLICATION_ID": self.application_id,
            **{f"TOPIC_{f.name.upper()}": getattr(self.topics, f.name) for f in fields(TopicNames)},
        }
        self.services = Services(work_dir / "logs", env)
        self.watch: Watch | None = None
        self.oms = "mock"  # or "fix": the FIX adapter and QuickFIX/J's Executor (fix_adapter.demo_flow)
        self.fix: Any = None

    # -- set-up ------------------------------------------------------------------------

    def oms_rules(self) -> list[str]:
        rules = [f"{load(s.sample)['proposal_id']}={s.oms_behaviour}" for s in self.scenarios]
        if self.guarantees:
            rules.append(f"{load(GUARANTEES_SAMPLE)['proposal_id']}={GUARANTEES_OMS}")
        return [arg for rule in rules for arg in ("--scenario", rule)]

    def start_services(self) -> None:
        self.services.start("processor", "processor", "--instance-id", "demo-1", "--state-dir",
                            str(self.work_dir / "state"), "--partitions", "3", "--http-port",
                            str(free_loopback_port()))
        self._wait(lambda: self._topics_exist(), 60, "the processor to create its topics")
        if self.oms == "fix":
            from fix_adapter.demo_flow import start_fix_oms

            self.fix = start_fix_oms(self)
        else:
            self.services.start("mock-oms", "mock_oms", "--seed", "7", "--group-id", f"{self.application_id}-oms",
                                *self.oms_rules())
        # The demo is both the advisor's app and the tool that sends a version inline: its token's
        # principal may do both (docs/gateway.md, "Authentication").
        principals = self.work_dir / "principals.toml"
        principals.write_text(f'[[tokens]]\nprincipal = "demo-advisor"\ntoken = "{self.token}"\n'
                              'scopes = ["executions:read", "executions:write", "artifacts:inline"]\n')
        self.services.env.update({"GATEWAY_API_PRINCIPALS_FILE": str(principals), "GATEWAY_INLINE_ARTIFACTS": "true",
                                  "GATEWAY_WEBHOOK_SECRETS": self.webhook_secret,
                                  "GATEWAY_PORT": str(self.gateway_port), "GATEWAY_HOST": "127.0.0.1"})
        self.services.start("gateway", "gateway")
        self._wait(lambda: self.http("GET", "/readyz")[0] == 200, 60, "the gateway to be ready")

    def publish_proposals(self) -> None:
        producer = Producer({"bootstrap.servers": self.bootstrap, "partitioner": "murmur2_random",
                             "enable.idempotence": True})
        samples = [s.sample for s in self.scenarios] + ([GUARANTEES_SAMPLE] if self.guarantees else [])
        for sample in samples:
            record = translate.artifact_to_record(parse_artifact(load(sample)))
            # As an upstream producer would: in the registry's framing when SCHEMA_REGISTRY_URL is set
            # (`--registry`), else single-object.
            codec = formats.value_codec("approved-proposals", self.topics.approved_proposals)
            producer.produce(self.topics.approved_proposals, key=record["proposal_id"].encode(),
                             value=codec.encode(record))
        producer.flush(30)

    # -- the flow ----------------------------------------------------------------------

    def run(self) -> bool:
        self.watch = Watch(self._changes_consumer())
        if self.oms == "fix":
            from fix_adapter.demo_flow import run_fix_scenarios

            return run_fix_scenarios(self, self.fix, load)
        ok = True
        for scenario in self.scenarios:
            ok &= self._execute(scenario)
        if self.guarantees:
            from demo.guarantees import GuaranteesAct

            ok &= GuaranteesAct(self).run()
        return ok

    def close(self) -> None:
        if self.watch is not None:
            self.watch.consumer.close()
            self.watch = None

    def create(self, sample: str, key: str, artifact: dict[str, Any] | None = None) -> tuple[int, Any]:
        """POST /rebalance/executions for a sample proposal, or for `artifact` sent inline (retried
        while the processor has not folded a published proposal yet: 404)."""
        raw = artifact or load(sample)
        body: dict[str, Any] = {
            "proposal_id": raw["proposal_id"], "version_no": raw["version_no"],
            "execution_policy": {"time_in_force": "DAY", "allow_partial_fills": True, "max_slippage_bps": "25",
                                 "dry_run": False},
            "actor": {"requested_by": "advisor_001", "channel": "ADVISOR_APP"},
        }
        if artifact is not None:
            body["artifact"] = artifact
        deadline = time.monotonic() + 30
        while True:
            status, created = self.http("POST", "/rebalance/executions", body, {"Idempotency-Key": key})
            if status != 404 or time.monotonic() > deadline:
                return status, created
            time.sleep(0.2)

    def show_tickets(self, created: dict[str, Any]) -> None:
        tickets = {t["ticket_id"]: t for t in created.get("tickets", [])}
        for ticket in tickets.values():
            deps = ", ".join(describe_ticket(tickets[d]) if d in tickets else d for d in ticket["dependencies"])
            say(f"  ticket {ticket['ticket_id']}  {describe_ticket(ticket):<34} after: {deps or '-'}", hanging=8)

    def follow(self, execution_id: str, done: Callable[..., bool] | None = None, timeout_s: float = 60) -> list[Any]:
        """Print the execution's changes as they come until `done` (default: a final state)."""
        assert self.watch is not None
        return self.watch.follow(execution_id, done or reached(), timeout_s, self.services.check_alive)

    def show_final(self, snapshot: dict[str, Any]) -> None:
        say("final:")
        for line in describe_final(snapshot):
            say("  " + line.strip(), hanging=6)

    def _execute(self, scenario: Scenario) -> bool:
        raw = load(scenario.sample)
        print(f"\n== {scenario.title}")
        say(f"proposal {raw['proposal_id']} v{raw['version_no']}, OMS behaviour: {scenario.oms_behaviour}")
        status, created = self.create(scenario.sample, f"demo-{self.run_id}-{scenario.sample}")
        if status not in (200, 201, 202):
            say(f"create failed: HTTP {status} {created}")
            return False
        execution_id = created["execution_id"]
        say(f"POST /rebalance/executions -> {status} {execution_id} ({created.get('status')})")
        self.show_tickets(created)

        changes = self.follow(execution_id)
        if not changes:
            say("no state change seen")
            return False
        seen: list[str] = []
        for change in changes:
            if not seen or seen[-1] != change.status:
                seen.append(change.status)
        last = changes[-1].snapshot
        self.show_final(last)
        status_ok = seen[-1] == scenario.expected_statuses[-1] and all(s in seen for s in scenario.expected_statuses)
        say(f"expected {' then '.join(scenario.expected_statuses)}: {'ok' if status_ok else 'NOT MET'}")
        if scenario.oms_behaviour == "reject_fx":
            buys = [t for t in last["tickets"] if t["ticket"].get("side") == "BUY"]
            never_released = all(not t["released"] and t["status"] == "CANCELLED" for t in buys)
            say(f"dependent BUYs never released: {'ok' if never_released else 'NOT MET'}")
            status_ok &= never_released
        return status_ok

    # -- helpers -----------------------------------------------------------------------

    def _changes_consumer(self) -> Consumer:
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"{self.application_id}-watch",
                             "isolation.level": "read_committed", "enable.auto.commit": False})
        topic = self.topics.execution_state_changes
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        return consumer

    def _topics_exist(self) -> bool:
        metadata = AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(timeout=5)
        return all(getattr(self.topics, f.name) in metadata.topics for f in fields(TopicNames))

    def http(self, method: str, path: str, body: dict[str, Any] | None = None,
              headers: dict[str, str] | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.gateway_port}{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            text = error.read().decode(errors="replace")
            try:
                return error.code, json.loads(text)
            except ValueError:
                return error.code, text
        except OSError:
            return 0, None

    def _wait(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.services.check_alive()
            try:
                if predicate():
                    return
            except Exception:  # not up yet
                pass
            time.sleep(0.2)
        raise RuntimeError(f"timed out waiting for {what}")

    def cleanup_topics(self) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        names = [getattr(self.topics, f.name) for f in fields(TopicNames)]
        existing = admin.list_topics(timeout=10).topics
        futures = admin.delete_topics([n for n in names if n in existing]) if existing else {}
        for future in futures.values():
            try:
                future.result(timeout=30)
            except Exception:
                pass


def build_parser() -> argparse.ArgumentParser:
    names = [s.sample for s in SCENARIOS] + [GUARANTEES]
    parser = argparse.ArgumentParser(
        prog="python -m demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="The broker: KAFKA_BOOTSTRAP_SERVERS when set (the demo's topics are its own and deleted "
               "afterwards), else a container or a local JVM broker it starts and stops.")
    parser.add_argument("--scenario", action="append", choices=names, metavar="NAME",
                        help=f"run only this scenario (repeatable): {', '.join(names)}; default: all of them")
    parser.add_argument("--oms", choices=("mock", "fix"), default="mock",
                        help="mock: the mock OMS (default); fix: the FIX adapter against QuickFIX/J's Executor "
                             "(docs/fix.md), with the FIX traffic summary")
    parser.add_argument("--registry", action="store_true",
                        help="every service speaks the Confluent Schema Registry wire format: against "
                             "SCHEMA_REGISTRY_URL when set, else a local Apicurio Registry it starts and stops "
                             "(built from Maven Central on first use; docs/wire.md)")
    parser.add_argument("--keep-running", action="store_true",
                        help="after the scenarios, keep the broker and the services running (and print how to "
                             "reach them) until Ctrl-C")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    chosen = args.scenario or [s.sample for s in SCENARIOS] + [GUARANTEES]
    scenarios = tuple(s for s in SCENARIOS if s.sample in chosen)
    if args.oms == "fix":  # its own scenarios (fix_adapter.demo_flow); their samples are published as usual
        from fix_adapter.demo_flow import FIX_SCENARIOS

        scenarios = tuple(s for s in SCENARIOS if s.sample in {f.sample for f in FIX_SCENARIOS})
        chosen = [name for name in chosen if name != GUARANTEES]
    with contextlib.ExitStack() as stack:
        endpoint = stack.enter_context(kafka_broker())
        work = stack.enter_context(tempfile.TemporaryDirectory(prefix="execution-demo-"))
        say(f"Kafka broker: {endpoint.description} at {endpoint.bootstrap_servers}", indent=0)
        if args.registry:
            registry = stack.enter_context(schema_registry())
            # Before any codec exists: the services inherit it, and this process's codecs read it.
            os.environ[REGISTRY_URL_ENV] = registry.url
            say(f"Schema registry: {registry.description} at {registry.url}; every topic in the Confluent "
                "wire format (magic byte 0, 4-byte schema id)", indent=0)
        return _run(args, endpoint, Path(work), scenarios, chosen)


def _run(args: argparse.Namespace, endpoint: KafkaEndpoint, work: Path, scenarios: tuple[Scenario, ...],
         chosen: list[str]) -> int:
    demo = Demo(endpoint.bootstrap_servers, work, scenarios, guarantees=GUARANTEES in chosen)
    demo.oms = args.oms
    ok = False
    try:
        demo.start_services()
        say(f"processor, gateway and {'FIX adapter' if args.oms == 'fix' else 'mock OMS'} started: " + ", ".join(
            f"{s.name} (pid {s.process.pid})" for s in demo.services.started), indent=0)
        demo.publish_proposals()
        ok = demo.run()
        if args.keep_running:
            keep_running(demo)
    except Exception as error:
        print(f"demo failed: {error}")
        for service in demo.services.started:
            print(f"--- {service.name} log tail\n{service.log_tail()}")
    finally:
        demo.close()
        codes = demo.services.stop_all()
        if demo.fix is not None:
            demo.fix.close()
        print()
        say("stopped: " + ", ".join(f"{name} (exit {code})" for name, code in codes), indent=0)
        if endpoint.kind == "external":
            demo.cleanup_topics()
    print("demo passed: every execution ended as its scenario expects" if ok else "demo FAILED")
    return 0 if ok else 1


def keep_running(demo: Demo) -> None:
    """Leave everything up for exploring by hand, until SIGINT or SIGTERM."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    print("\nstill running (Ctrl-C stops everything); in another shell:")
    print(f"  export KAFKA_BOOTSTRAP_SERVERS={demo.bootstrap} GATEWAY_URL=http://127.0.0.1:{demo.gateway_port}")
    print(f"  export GATEWAY_TOKEN={demo.token} WEBHOOK_SECRET={demo.webhook_secret}")
    print(f"  export TOPIC_EXECUTION_STATE_CHANGES={demo.topics.execution_state_changes}")
    print(f"  export TOPIC_APPROVED_PROPOSALS={demo.topics.approved_proposals}")
    print("  curl -sS -H \"Authorization: Bearer $GATEWAY_TOKEN\" \"$GATEWAY_URL/rebalance/executions\"")
    print("  .venv/bin/python -m status_consumer --from-beginning")
    print(f"operator console: http://127.0.0.1:{demo.gateway_port}/console/ (sign in with the token above,")
    print("  $GATEWAY_TOKEN; docs/console.md)")
    while not stop.is_set():
        demo.services.check_alive()
        stop.wait(0.5)
