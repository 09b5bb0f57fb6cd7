"""An admission for a proposal version the proposals task has not read yet waits while the task's
approved-proposals partition may still hold it unread, and is decided when the version arrives,
when the partition is read to the end it had, or after WAIT_AT_MOST_S (processor.admission).
One proposals task on a real RocksDB store; the transaction is a recording stand-in."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import processor.admission
from execution_domain import parse_artifact
from execution_domain.proposal import seal_artifact
from kafka_client.settings import KafkaSettings
from processor.config import ProcessorConfig
from processor.metrics import ProcessorMetrics
from processor.runtime.store import PartitionStore
from processor.runtime.task import InputPositions, Task, TaskId
from processor.topology import ServiceTopology
from testkit.processor import load_sample
from testkit.records import ConsumedRecord
from wire import formats, serde
from wire import records as translate
from wire.topics import TopicNames

TOPICS = TopicNames.defaults("waiting-test", {})
TRACE = [("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]


@dataclass
class Positions:
    """InputPositions of the test: set by hand."""

    read: int | None = None
    end: int | None = 10

    def read_to(self, topic: str, partition: int) -> int | None:
        assert topic == TOPICS.approved_proposals
        return self.read

    def end_offset(self, topic: str, partition: int) -> int | None:
        assert topic == TOPICS.approved_proposals
        return self.end


@dataclass
class Txn:
    produced: list[tuple[str, bytes | None, Any]] = field(default_factory=list)
    deliveries: list[Any] = field(default_factory=list)

    def produce(self, topic: str, value: bytes | None, *, key: bytes | None = None, headers: Any = None,
                partition: int | None = None, on_delivery: Any = None) -> None:
        self.produced.append((topic, value, headers))
        if on_delivery is not None:
            self.deliveries.append(on_delivery)

    def deliver(self) -> None:
        """Every delivery report, at consecutive offsets (as the broker's acknowledgements)."""
        for offset, report in enumerate(self.deliveries):
            report(None, ConsumedRecord("changelog", 0, offset))
        self.deliveries.clear()

    def decisions(self) -> list[tuple[dict[str, Any], Any]]:
        return [(serde.decode("AdmissionDecision", value or b"", topic=topic, partition=0, offset=0), headers)
                for topic, value, headers in self.produced if topic == TOPICS.admission_decisions]


class Proposals:
    """One proposals task (partition 0) and its inputs."""

    def __init__(self, store: PartitionStore, positions: InputPositions) -> None:
        config = ProcessorConfig(kafka=KafkaSettings("unused:9092"), application_id="waiting-test",
                                 instance_id="t", state_dir=Path("unused"), topics=TOPICS, partitions=1,
                                 commit_interval_ms=100, batch_size=500, http_host="127.0.0.1", http_port=0,
                                 log_level="WARNING")
        self.metrics = ProcessorMetrics()
        self.task: Task = ServiceTopology(config, self.metrics, formats.from_environment()).build_task(
            TaskId("proposals", 0), store, 1, inputs=positions)
        self.task.begin_restore()
        self.task.initialize()
        self.txn = Txn()
        self._offset = 0

    def _record(self, topic: str, key: str, value: bytes, headers: list[tuple[str, bytes]] | None = None) -> Any:
        self._offset += 1
        return ConsumedRecord(topic, 0, self._offset, key.encode(), value, headers)

    def publish(self, raw: dict[str, Any]) -> None:
        value = serde.encode("ApprovedProposal", translate.artifact_to_record(parse_artifact(raw)))
        self.task.process(self._record(TOPICS.approved_proposals, raw["proposal_id"], value), self.txn)  # type: ignore[arg-type]

    def request(self, raw: dict[str, Any], execution_id: str) -> None:
        record = {"request_id": f"cmd-{execution_id}", "kind": "ADMIT", "proposal_id": raw["proposal_id"],
                  "version_no": raw["version_no"], "execution_id": execution_id, "correlation_id": f"corr-{execution_id}",
                  "issued_at": datetime(2026, 12, 5, 9, 30, tzinfo=UTC), "reserve_version": True, "artifact": None,
                  "ended_state": None}
        value = serde.encode("AdmissionRequest", record)
        self.task.process(self._record(TOPICS.admission_requests, raw["proposal_id"], value, TRACE), self.txn)  # type: ignore[arg-type]

    def punctuate(self) -> bool:
        return self.task.punctuate(lambda: self.txn)  # type: ignore[arg-type,return-value]

    def commit(self) -> None:
        self.task.prepare_commit(self.txn)  # type: ignore[arg-type]
        self.txn.deliver()
        self.task.post_commit()

    def outcomes(self) -> list[tuple[str, str]]:
        return [(d["execution_id"], d["outcome"]) for d, _ in self.txn.decisions()]

    def waits(self, outcome: str) -> float:
        """processor_admission_waits_total{outcome}"""
        value = self.metrics.registry.get_sample_value("processor_admission_waits_total", {"outcome": outcome})
        return value or 0.0


def proposal(proposal_id: str) -> dict[str, Any]:
    raw = copy.deepcopy(load_sample("rfc_accept_all"))
    raw["proposal_id"] = proposal_id
    return seal_artifact(raw)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[PartitionStore]:
    store = PartitionStore(tmp_path / "proposals", TOPICS.proposals_changelog, 0)
    yield store
    store.close()


def test_admission_for_a_version_not_read_yet_waits_and_is_admitted_when_the_version_arrives(
        store: PartitionStore) -> None:
    positions = Positions(read=3, end=10)
    proposals = Proposals(store, positions)
    raw = proposal("prop_waited_for")

    proposals.request(raw, "exec_1")
    assert proposals.outcomes() == [] and proposals.punctuate() is False  # waiting: nothing due yet

    positions.read = 7
    proposals.publish(raw)  # the version was further down the partition
    assert proposals.punctuate() is True
    assert proposals.outcomes() == [("exec_1", "ADMITTED")]
    [(decision, headers)] = proposals.txn.decisions()
    assert decision["request_id"] == "cmd-exec_1" and decision["correlation_id"] == "corr-exec_1"
    assert headers[-1] == TRACE[0]  # the decision carries the create's trace context, as one decided at once
    assert proposals.punctuate() is False  # decided once
    assert (proposals.waits("WAITING"), proposals.waits("ADMITTED")) == (1, 1)


def test_admission_waiting_is_not_found_once_the_partition_is_read_to_the_end_it_had(store: PartitionStore) -> None:
    positions = Positions(read=None, end=10)  # nothing known read yet since the assignment
    proposals = Proposals(store, positions)
    proposals.request(proposal("prop_never_published"), "exec_2")
    positions.end = 12  # published meanwhile: after the request, so not what it waits for
    positions.read = 9
    assert proposals.punctuate() is False

    positions.read = 10
    assert proposals.punctuate() is True
    assert proposals.outcomes() == [("exec_2", "PROPOSAL_NOT_FOUND")]


@pytest.mark.parametrize(("read", "end"), [(10, 10), (None, 0), (None, None)],
                         ids=["read-to-the-end", "empty-partition", "end-unknown"])
def test_admission_for_an_unknown_version_is_not_found_at_once_when_nothing_can_be_unread(
        store: PartitionStore, read: int | None, end: int | None) -> None:
    proposals = Proposals(store, Positions(read=read, end=end))
    proposals.request(proposal("prop_unknown"), "exec_3")
    assert proposals.outcomes() == [("exec_3", "PROPOSAL_NOT_FOUND")]
    assert proposals.punctuate() is False


def test_admissions_waiting_for_one_version_are_decided_in_arrival_order(store: PartitionStore) -> None:
    positions = Positions(read=0, end=10)
    proposals = Proposals(store, positions)
    raw = proposal("prop_two_asks")
    proposals.request(raw, "exec_first")
    proposals.request(raw, "exec_second")
    proposals.publish(raw)
    proposals.punctuate()
    assert proposals.outcomes() == [("exec_first", "ADMITTED"), ("exec_second", "VERSION_IN_USE")]


def test_admission_waits_at_most_wait_at_most_s(store: PartitionStore, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1_796_000_000.0]
    monkeypatch.setattr(processor.admission.time, "time", lambda: clock[0])
    proposals = Proposals(store, Positions(read=0, end=10))  # an upstream transaction left open: never read to 10
    proposals.request(proposal("prop_stuck"), "exec_4")
    clock[0] += processor.admission.WAIT_AT_MOST_S - 1
    assert proposals.punctuate() is False
    clock[0] += 1
    assert proposals.punctuate() is True
    assert proposals.outcomes() == [("exec_4", "PROPOSAL_NOT_FOUND")]


def test_admission_waiting_when_its_transaction_committed_is_decided_by_the_next_incarnation(
        tmp_path: Path) -> None:
    positions = Positions(read=2, end=10)
    first = Proposals(PartitionStore(tmp_path / "p", TOPICS.proposals_changelog, 0), positions)
    first.request(proposal("prop_across_restart"), "exec_5")
    first.commit()
    first.task.close()  # closes its store

    positions.read = 10
    reopened = PartitionStore(tmp_path / "p", TOPICS.proposals_changelog, 0)  # as after a restart
    try:
        second = Proposals(reopened, positions)
        assert second.punctuate() is True
        assert second.outcomes() == [("exec_5", "PROPOSAL_NOT_FOUND")]
    finally:
        reopened.close()


def test_admission_whose_version_arrival_was_aborted_goes_on_waiting(store: PartitionStore) -> None:
    positions = Positions(read=0, end=10)
    proposals = Proposals(store, positions)
    raw = proposal("prop_aborted_arrival")
    proposals.request(raw, "exec_6")
    proposals.commit()
    proposals.publish(raw)
    proposals.task.abort()  # the transaction that read the version failed: it is read again later

    proposals.punctuate()
    assert proposals.outcomes() == []
    proposals.publish(raw)
    proposals.punctuate()
    assert proposals.outcomes() == [("exec_6", "ADMITTED")]


def test_admission_for_a_version_others_wait_for_waits_behind_them_though_the_version_arrived(
        store: PartitionStore) -> None:
    positions = Positions(read=0, end=10)
    proposals = Proposals(store, positions)
    raw = proposal("prop_first_asker")
    proposals.request(raw, "exec_first")
    proposals.publish(raw)  # in the same batch as the next request: the version is known to it
    proposals.request(raw, "exec_second")
    assert proposals.outcomes() == []  # the second waits behind the first instead of taking the version

    proposals.punctuate()
    assert proposals.outcomes() == [("exec_first", "ADMITTED"), ("exec_second", "VERSION_IN_USE")]


def test_admission_waiting_bounds_apply_across_restarts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1_796_000_000.0]
    monkeypatch.setattr(processor.admission.time, "time", lambda: clock[0])
    positions = Positions(read=0, end=10)
    first = Proposals(PartitionStore(tmp_path / "p", TOPICS.proposals_changelog, 0), positions)
    first.request(proposal("prop_restarted_wait"), "exec_7")
    first.commit()
    first.task.close()
    clock[0] += processor.admission.WAIT_AT_MOST_S  # the time it waited before the restart counts

    reopened = PartitionStore(tmp_path / "p", TOPICS.proposals_changelog, 0)
    try:
        second = Proposals(reopened, positions)
        assert second.punctuate() is True
        assert second.outcomes() == [("exec_7", "PROPOSAL_NOT_FOUND")]
    finally:
        reopened.close()


def test_admission_that_cannot_be_decided_is_answered_with_the_reason_not_left_pending(
        store: PartitionStore, monkeypatch: pytest.MonkeyPatch) -> None:
    positions = Positions(read=0, end=10)
    proposals = Proposals(store, positions)
    raw = proposal("prop_bug")
    proposals.request(raw, "exec_8")
    proposals.publish(raw)
    processor_ = proposals.task._processor
    assert isinstance(processor_, processor.admission.ProposalsProcessor)

    def broken(request: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("a bug in the admission")

    monkeypatch.setattr(processor_, "_admit", broken)
    assert proposals.punctuate() is True
    [(decision, _)] = proposals.txn.decisions()
    assert decision["outcome"] == "INVALID_ARTIFACT" and decision["artifact"] is None
    assert "a bug in the admission" in decision["reason"]
    assert proposals.punctuate() is False  # answered once, no longer waiting
