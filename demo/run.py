"""The demo: the whole flow on a real broker, as its users would drive it.

Starts (or uses) a Kafka broker, then the processor, the gateway and the mock OMS as separate
processes; publishes the sample approved proposals (samples/proposals/) as the upstream
proposal system would; creates one execution per proposal through the HTTP API as an
advisor's app would; prints each execution's tickets with their dependencies, every state
change as it happens, and the final state; then stops everything it started. Exit status 0
means every execution ended in the state its scenario expects.
"""

from __future__ import annotations

import json
import secrets
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from demo.services import ROOT, Services
from execution_domain import parse_artifact
from local_kafka.broker import free_loopback_port
from local_kafka.select import kafka_broker
from status_consumer.format import describe_change, describe_final, describe_ticket
from wire import records as translate
from wire import serde
from wire.topics import TopicNames

SAMPLES = ROOT / "samples" / "proposals"


@dataclass(frozen=True)
class Scenario:
    sample: str
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
TERMINAL = {"FILLED", "REJECTED", "CANCELLED"}


def load(sample: str) -> dict[str, Any]:
    return json.loads((SAMPLES / f"{sample}.json").read_text())


class Demo:
    def __init__(self, bootstrap: str, work_dir: Path) -> None:
        self.bootstrap = bootstrap
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
        self.services = Services(work_dir, env)

    # -- set-up ------------------------------------------------------------------------

    def start_services(self) -> None:
        samples = {scenario.sample: load(scenario.sample) for scenario in SCENARIOS}
        oms_rules = [f"{samples[s.sample]['proposal_id']}={s.oms_behaviour}" for s in SCENARIOS]
        self.services.start("processor", "processor", "--instance-id", "demo-1", "--state-dir",
                            str(self.work_dir / "state"), "--partitions", "3", "--http-port",
                            str(free_loopback_port()))
        self._wait(lambda: self._topics_exist(), 60, "the processor to create its topics")
        self.services.start("mock-oms", "mock_oms", "--seed", "7", "--group-id", f"{self.application_id}-oms",
                            *[arg for rule in oms_rules for arg in ("--scenario", rule)])
        self.services.env.update({"GATEWAY_API_TOKENS": self.token, "GATEWAY_WEBHOOK_SECRETS": self.webhook_secret,
                                  "GATEWAY_PORT": str(self.gateway_port), "GATEWAY_HOST": "127.0.0.1"})
        self.services.start("gateway", "gateway")
        self._wait(lambda: self._http("GET", "/readyz")[0] == 200, 60, "the gateway to be ready")

    def publish_proposals(self) -> None:
        producer = Producer({"bootstrap.servers": self.bootstrap, "partitioner": "murmur2_random",
                             "enable.idempotence": True})
        for scenario in SCENARIOS:
            record = translate.artifact_to_record(parse_artifact(load(scenario.sample)))
            producer.produce(self.topics.approved_proposals, key=record["proposal_id"].encode(),
                             value=serde.encode("ApprovedProposal", record))
        producer.flush(30)

    # -- the flow ----------------------------------------------------------------------

    def run(self) -> bool:
        changes = self._changes_consumer()
        ok = True
        try:
            for scenario in SCENARIOS:
                ok &= self._execute(scenario, changes)
        finally:
            changes.close()
        return ok

    def _execute(self, scenario: Scenario, changes: Consumer) -> bool:
        raw = load(scenario.sample)
        print(f"\n== {scenario.title}")
        print(f"   proposal {raw['proposal_id']} v{raw['version_no']}, OMS behaviour: {scenario.oms_behaviour}")
        body = {
            "proposal_id": raw["proposal_id"], "version_no": raw["version_no"],
            "execution_policy": {"time_in_force": "DAY", "allow_partial_fills": True, "max_slippage_bps": "25",
                                 "dry_run": False},
            "actor": {"requested_by": "advisor_001", "channel": "ADVISOR_APP"},
        }
        deadline = time.monotonic() + 30
        while True:  # the processor may still be folding the proposal it was just sent
            status, created = self._http("POST", "/rebalance/executions", body,
                                         {"Idempotency-Key": f"demo-{self.run_id}-{scenario.sample}"})
            if status != 404 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if status not in (200, 201, 202):
            print(f"   create failed: HTTP {status} {created}")
            return False
        execution_id = created["execution_id"]
        print(f"   POST /rebalance/executions -> {status} {execution_id} ({created.get('status')})")
        tickets = {t["ticket_id"]: t for t in created.get("tickets", [])}
        for ticket in tickets.values():
            deps = ", ".join(describe_ticket(tickets[d]) if d in tickets else d for d in ticket["dependencies"])
            print(f"     ticket {ticket['ticket_id']}  {describe_ticket(ticket):<45} after: {deps or '-'}")

        seen: list[str] = []
        last: dict[str, Any] | None = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (last is None or last["execution"]["status"] not in TERMINAL):
            self.services.check_alive()
            for message in changes.consume(100, timeout=0.2):
                if message.error():
                    continue
                change = serde.decode("ExecutionStateChange", message.value(), topic=message.topic(),
                                      partition=message.partition(), offset=message.offset())
                if change["execution_id"] != execution_id:
                    continue
                print("   " + describe_change(change))
                last = change
                if not seen or seen[-1] != change["execution"]["status"]:
                    seen.append(change["execution"]["status"])
        if last is None:
            print("   no state change seen")
            return False
        print("   final:")
        for line in describe_final(last["execution"]):
            print("     " + line)
        status_ok = seen[-1] == scenario.expected_statuses[-1] and all(s in seen for s in scenario.expected_statuses)
        print(f"   expected {' then '.join(scenario.expected_statuses)}: {'ok' if status_ok else 'NOT MET'}")
        if scenario.oms_behaviour == "reject_fx":
            buys = [t for t in last["execution"]["tickets"] if t["ticket"].get("side") == "BUY"]
            never_released = all(not t["released"] and t["status"] == "CANCELLED" for t in buys)
            print(f"   dependent BUYs never released: {'ok' if never_released else 'NOT MET'}")
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

    def _http(self, method: str, path: str, body: dict | None = None,
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
            return error.code, error.read().decode(errors="replace")
        except OSError:
            return 0, None

    def _wait(self, predicate, timeout_s: float, what: str) -> None:
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


def main() -> int:
    with kafka_broker() as endpoint, tempfile.TemporaryDirectory(prefix="execution-demo-") as work:
        print(f"Kafka broker: {endpoint.description} at {endpoint.bootstrap_servers}")
        demo = Demo(endpoint.bootstrap_servers, Path(work))
        ok = False
        try:
            demo.start_services()
            print("processor, gateway and mock OMS started: " + ", ".join(
                f"{s.name} (pid {s.process.pid})" for s in demo.services.started))
            demo.publish_proposals()
            ok = demo.run()
        except Exception as error:
            print(f"demo failed: {error}")
            for service in demo.services.started:
                print(f"--- {service.name} log tail\n{service.log_tail()}")
        finally:
            codes = demo.services.stop_all()
            print("\nstopped: " + ", ".join(f"{name} (exit {code})" for name, code in codes))
            if endpoint.kind == "external":
                demo.cleanup_topics()
    print("demo passed: every execution ended as its scenario expects" if ok else "demo FAILED")
    return 0 if ok else 1
