"""The demo's last act: the guarantees that make the service worth having, each shown and checked.

1. A cancel: with the OMS away, an execution of a version sent inline (not published upstream)
   is created and cancelled; released orders go to PENDING_CANCEL (the OMS decides), unreleased
   ones are cancelled at once.
2. An idempotent create: the same request is sent twice with one Idempotency-Key; one execution,
   and each ticket is released (SUBMIT on trade-tickets) exactly once.
3. A faulty OMS: the mock OMS comes back sending every report twice and swapping neighbours;
   each report is applied once and no ticket is filled beyond its order.
4. A crash: the processor is SIGKILLed mid-stream and restarted on the same state directory;
   the timeline goes on from where it was, no state change missing or repeated.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from demo.timeline import say
from execution_domain.proposal import seal_artifact
from status_consumer.changes import StateChange
from wire import serde

if TYPE_CHECKING:
    from demo.run import Demo


def load(sample: str) -> dict[str, Any]:
    from demo.run import load as load_sample

    return load_sample(sample)

SAMPLE = "usd_cash_flow_eur"
FAULTS = ("--duplicate-rate", "1", "--reorder-rate", "1", "--latency-ms", "150,300")


def _moved_to(change: StateChange, ticket_state: str) -> bool:
    return any(t["to_state"] == ticket_state for t in change.record["ticket_transitions"])


def verdict(ok: bool) -> str:
    return "ok" if ok else "NOT MET"


class GuaranteesAct:
    def __init__(self, demo: Demo) -> None:
        self.demo = demo
        self.checks: list[tuple[str, bool]] = []

    def check(self, what: str, ok: bool) -> bool:
        self.checks.append((what, ok))
        say(f"{what}: {verdict(ok)}")
        return ok

    def run(self) -> bool:
        demo = self.demo
        print("\n== Guarantees: a cancel, a retried create, a faulty OMS and a processor crash")
        code = demo.services.stop("mock-oms")
        say(f"mock OMS stopped (exit {code}): orders now wait at the OMS")

        # 1. Cancel, on version 2 of the proposal sent inline (its tickets are its own: ticket ids
        # derive from the version's hash, and an OMS deduplicates by ticket id).
        inline = seal_artifact({**load(SAMPLE), "version_no": 2})
        say(f"{inline['proposal_id']} v2 is not published upstream: the create sends it inline as `artifact`")
        status, created = demo.create(SAMPLE, f"demo-{demo.run_id}-cancel", inline)
        if status not in (200, 201, 202):
            return self.check(f"create to cancel: HTTP {status} {created}", False)
        cancelled_id = created["execution_id"]
        say(f"POST /rebalance/executions -> {status} {cancelled_id} ({created.get('status')})")
        demo.show_tickets(created)
        demo.follow(cancelled_id, lambda cs: any(_moved_to(c, "SUBMITTED") for c in cs), 30)
        status, answer = demo.http("POST", f"/rebalance/executions/{cancelled_id}/cancel",
                                   {"actor": {"requested_by": "advisor_001", "channel": "ADVISOR_APP"},
                                    "reason": "client changed their mind"})
        say(f"POST .../{cancelled_id}/cancel -> {status} {answer.get('cancel') if isinstance(answer, dict) else answer}")
        demo.follow(cancelled_id, lambda cs: any(_moved_to(c, "PENDING_CANCEL") for c in cs), 30)
        oms = demo.services.restart("mock-oms", *FAULTS)
        say(f"mock OMS back (pid {oms.process.pid}) with faults: every report sent twice, neighbours swapped")
        changes = demo.follow(cancelled_id)
        final = changes[-1].snapshot if changes else None
        unreleased_cancelled = final is not None and all(
            t["status"] == "CANCELLED" for t in final["tickets"])
        self.check(f"cancel: {cancelled_id} {final['status'] if final else '?'}, every ticket CANCELLED, "
                   f"the released ones after PENDING_CANCEL at the OMS",
                   final is not None and final["status"] == "CANCELLED" and unreleased_cancelled)

        # 2. Idempotent create.
        key = f"demo-{demo.run_id}-guarantees"
        status, created = demo.create(SAMPLE, key)
        if status not in (200, 201, 202):
            return self.check(f"create after the cancel: HTTP {status} {created}", False)
        execution_id = created["execution_id"]
        say(f"POST /rebalance/executions -> {status} {execution_id} ({created.get('status')})")
        demo.show_tickets(created)
        again_status, again = demo.create(SAMPLE, key)
        same = isinstance(again, dict) and again.get("execution_id") == execution_id
        say(f"the same POST again, same Idempotency-Key -> {again_status} "
            f"{again.get('execution_id') if isinstance(again, dict) else again}")
        self.check("retried create answered with the same execution", again_status == 200 and same)

        # 3 and 4. The faulty OMS answers; the processor crashes mid-stream.
        demo.follow(execution_id, lambda cs: any(c.record["cause"]["kind"] == "ORDER_EVENT" for c in cs), 30)
        killed = demo.services.kill("processor")
        say(f"processor SIGKILLed (pid {killed}) mid-stream; restarting it on the same state directory")
        processor = demo.services.restart("processor")
        say(f"processor restarted (pid {processor.process.pid}); the timeline goes on:")
        changes = demo.follow(execution_id, timeout_s=90)
        if not changes:
            return self.check("state changes of the guarded execution", False)
        demo.show_final(changes[-1].snapshot)
        self._verify(execution_id, changes)
        return all(ok for _, ok in self.checks)

    def _verify(self, execution_id: str, changes: list[StateChange]) -> None:
        demo = self.demo
        snapshot = changes[-1].snapshot
        tickets = snapshot["tickets"]
        self.check("execution ended FILLED", snapshot["status"] == "FILLED")

        submits = Counter(r["ticket"]["ticket_id"] for r in self._read("TicketInstruction", demo.topics.trade_tickets)
                          if r["execution_id"] == execution_id and r["instruction"] == "SUBMIT")
        self.check(f"each of the {len(tickets)} tickets released once ({sum(submits.values())} SUBMITs on "
                   f"trade-tickets)", sorted(submits) == sorted(t["ticket"]["ticket_id"] for t in tickets)
                   and set(submits.values()) == {1})

        reports = [r for r in self._read("OrderEvent", demo.topics.order_events) if r["execution_id"] == execution_id]
        ids = Counter(r["event_id"] for r in reports)
        late = 0
        newest: dict[str, Any] = {}
        for report in reports:
            if report["ticket_id"] in newest and report["occurred_at"] < newest[report["ticket_id"]]:
                late += 1
            newest[report["ticket_id"]] = max(newest.get(report["ticket_id"], report["occurred_at"]),
                                              report["occurred_at"])
        logged = Counter(row["event_id"] for row in snapshot["events"] if row.get("event_id"))
        filled_exactly = all(t["filled_qty"] == t["order_quantity"] and not t["overfill_qty"] for t in tickets)
        self.check(f"OMS sent {len(reports)} reports: {len(reports) - len(ids)} duplicates, {late} out of order; "
                   f"each applied once, every ticket filled exactly its quantity",
                   len(reports) > len(ids) and late > 0 and max(logged.values(), default=1) == 1 and filled_exactly)

        sequences = [c.sequence for c in changes]
        self.check(f"state changes #1..#{max(sequences)} across the crash: none missing, none twice",
                   sorted(sequences) == list(range(1, len(sequences) + 1)))

    def _read(self, schema: str, topic: str) -> list[dict[str, Any]]:
        """Every committed record of a topic, decoded (the demo's topics are small)."""
        consumer = Consumer({"bootstrap.servers": self.demo.bootstrap, "group.id": f"demo-audit-{uuid.uuid4().hex}",
                             "isolation.level": "read_committed", "enable.partition.eof": True,
                             "enable.auto.commit": False})
        try:
            partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
            records: list[dict[str, Any]] = []
            at_end: set[int] = set()
            deadline = time.monotonic() + 30
            while len(at_end) < len(partitions) and time.monotonic() < deadline:
                for message in consumer.consume(500, timeout=0.5):
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            at_end.add(message.partition() or 0)
                        continue
                    records.append(serde.decode(schema, message.value() or b"", topic=topic,
                                                partition=message.partition() or 0, offset=message.offset() or 0))
            return records
        finally:
            consumer.close()
