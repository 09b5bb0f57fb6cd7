"""No input can stop a partition (issue #14): every trigger that once crash-looped a processor is
dead-lettered (bounded) or folded, the processor never exits, and the next valid execution on the
same partition completes. Also: records the broker or the producer refuses for their size,
records produced with the wrong partitioner, one owner per state directory, client settings."""

from __future__ import annotations

import copy
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from execution_domain import EventDetails, OrderEvent, OrderEventType, execution_id_for_key
from execution_domain.proposal import seal_artifact
from kafka_client.partitioning import crc32_partition, expected_partition
from testkit.processor import ROOT, T0, ProcessorHarness, ProcessorProcess, ScriptedOms, load_sample, wait_until
from wire import records as translate
from wire import serde

pytestmark = pytest.mark.integration

DEAD_LETTER_VALUE_LIMIT = 256 * 1024


def key_on_partition(harness: ProcessorHarness, partition: int, label: str) -> str:
    """An idempotency key whose execution lands on `partition` (murmur2), for "the same partition"."""
    while True:
        key = f"{label}-{uuid.uuid4().hex[:8]}"
        if expected_partition(execution_id_for_key(key).encode(), harness.partitions) == partition:
            return key


def sealed_sell(proposal_id: str, quantity: int = 100, intents: int = 1) -> dict[str, Any]:
    raw = copy.deepcopy(load_sample("rfc_partial_then_fill"))
    raw.update({"proposal_id": proposal_id, "version_no": 1})
    raw["trades_and_funding"] = {"funding_claimed": False, "intents": [
        {"intent_type": "SECURITY_TRADE", "intent_id": f"oi_sell_{i:04d}", "dependencies": [],
         "instrument_id": f"SG_EQ_{i:05d}", "side": "SELL", "quantity": str(quantity), "currency": "SGD",
         "indicative_price": "10.5"} for i in range(intents)]}
    return seal_artifact(raw)


def create(harness: ProcessorHarness, key: str, raw: dict[str, Any], **options: Any) -> str:
    if options.get("inline_artifact") is None:
        harness.publish_proposal(raw)
    result = harness.result(harness.create(key, raw["proposal_id"], raw["version_no"], **options), timeout_s=120)
    assert result["outcome"] == "CREATED", result
    execution_id: str = result["execution_id"]
    return execution_id


def event(execution_id: str, ticket_id: str, n: int, kind: OrderEventType, **details: Any) -> OrderEvent:
    return OrderEvent(f"ev-{ticket_id}-{n}", execution_id, ticket_id, "oms", kind, f"OMS-{ticket_id}",
                      T0 + timedelta(minutes=2, milliseconds=n), EventDetails(**details))


def tickets_of(harness: ProcessorHarness, execution_id: str) -> list[str]:
    instructions = wait_until(lambda: harness.instructions(execution_id), 60, what="the execution's SUBMITs")
    return [i["ticket"]["ticket_id"] for i in instructions]


def next_execution_on_the_partition_completes(harness: ProcessorHarness, partition: int) -> None:
    """A fresh execution on `partition` is created and filled: the partition goes on."""
    raw = sealed_sell(f"prop_next_{uuid.uuid4().hex[:6]}")
    execution_id = create(harness, key_on_partition(harness, partition, "next"), raw)
    ScriptedOms(harness, execution_id=execution_id).run_until(
        lambda: harness.latest_status(execution_id) == "FILLED", 60)


def still_running_once(process: ProcessorProcess) -> None:
    assert process.process.poll() is None, f"the processor exited with {process.process.returncode}"
    starts = process.log_path.read_text(errors="replace").count("starting processor")
    assert starts == 1, f"the processor started {starts} times"


def dead_letter_of(harness: ProcessorHarness, matches: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    letters = wait_until(lambda: [d for d in harness.dead_letters() if matches(d)], 60, what="the dead letter")
    return letters[0]


@pytest.fixture
def spawned(harness: ProcessorHarness) -> tuple[ProcessorHarness, ProcessorProcess]:
    process = harness.spawn("p1")
    wait_until(lambda: "restored store executions/" in process.log_path.read_text(errors="replace"), 60,
               what="the processor ready")
    return harness, process


def produce_raw(harness: ProcessorHarness, topic: str, key: bytes, value: bytes, partition: int, **config: Any) -> None:
    producer = Producer({"bootstrap.servers": harness.bootstrap, **config})
    producer.produce(topic, key=key, value=value, partition=partition)
    assert producer.flush(30) == 0


def test_garbage_of_999900_bytes_on_order_events_is_dead_lettered_by_reference_and_the_partition_goes_on(
    spawned: tuple[ProcessorHarness, ProcessorProcess],
) -> None:
    harness, process = spawned
    key = execution_id_for_key("garbage").encode()
    partition = expected_partition(key, harness.partitions)
    produce_raw(harness, harness.topics.order_events, key, b"\x07" * 999_900, partition,
                **{"message.max.bytes": 2_000_000})
    letter = dead_letter_of(harness, lambda d: d["original_value_size"] == 999_900)
    assert letter["error_type"] == "DecodeError" and letter["original_value"] is None
    assert letter["original_value_truncated"] and len(letter["original_value_sha256"]) == 64
    next_execution_on_the_partition_completes(harness, partition)
    still_running_once(process)


def test_five_megabytes_of_zeros_compressed_on_order_events_is_dead_lettered_and_the_partition_goes_on(
    spawned: tuple[ProcessorHarness, ProcessorProcess],
) -> None:
    harness, process = spawned
    key = execution_id_for_key("zeros").encode()
    partition = expected_partition(key, harness.partitions)
    produce_raw(harness, harness.topics.order_events, key, bytes(5_000_000), partition,
                **{"message.max.bytes": 10_000_000, "compression.type": "gzip"})
    letter = dead_letter_of(harness, lambda d: d["original_value_size"] == 5_000_000)
    assert letter["original_value"] is None and letter["original_value_truncated"]
    next_execution_on_the_partition_completes(harness, partition)
    still_running_once(process)


def test_cancel_rejected_with_a_990000_character_reason_is_folded_with_the_reason_cut(
    spawned: tuple[ProcessorHarness, ProcessorProcess],
) -> None:
    harness, process = spawned
    key = f"huge-reason-{uuid.uuid4().hex[:6]}"
    execution_id = create(harness, key, sealed_sell(f"prop_reason_{uuid.uuid4().hex[:6]}"))
    (ticket_id,) = tickets_of(harness, execution_id)
    harness.send_events([
        event(execution_id, ticket_id, 1, OrderEventType.ORDER_ACCEPTED),
        event(execution_id, ticket_id, 2, OrderEventType.CANCEL_REJECTED, reason="x" * 990_000),
    ])
    wait_until(lambda: any(c["cause"]["id"] == f"ev-{ticket_id}-2" for c in harness.state_changes(execution_id)),
               60, what="the cancel-rejected report folded")
    change = next(c for c in harness.state_changes(execution_id) if c["cause"]["id"] == f"ev-{ticket_id}-2")
    reasons = [row["reason"] for row in change["execution"]["events"] if row["reason"]]
    assert reasons and all(len(r) <= 1_100 for r in reasons) and "cut: 990,000 characters" in reasons[0]
    partition = expected_partition(execution_id.encode(), harness.partitions)
    next_execution_on_the_partition_completes(harness, partition)
    still_running_once(process)


def test_1330_status_reports_and_1050_fills_on_one_ticket_are_folded_and_the_partition_goes_on(
    spawned: tuple[ProcessorHarness, ProcessorProcess],
) -> None:
    harness, process = spawned
    execution_id = create(harness, f"many-{uuid.uuid4().hex[:6]}", sealed_sell(f"prop_many_{uuid.uuid4().hex[:6]}",
                                                                                  quantity=1_050))
    (ticket_id,) = tickets_of(harness, execution_id)
    reports = [event(execution_id, ticket_id, n, OrderEventType.ORDER_ACCEPTED) for n in range(1_330)]
    fills = [event(execution_id, ticket_id, 10_000 + n, OrderEventType.PARTIAL_FILL,
                   fill_id=f"F{n}", last_qty=Decimal(1), last_price=Decimal("10.5")) for n in range(1_050)]
    harness.send_events(reports + fills)
    wait_until(lambda: (row := harness.snapshot(execution_id)) is not None and row["status"] == "FILLED", 120,
               what="1,050 fills folded")
    next_execution_on_the_partition_completes(harness, expected_partition(execution_id.encode(), harness.partitions))
    still_running_once(process)
    assert not harness.dead_letters()


def test_create_with_an_inline_artifact_of_1000_intents_is_folded_and_the_partition_goes_on(
    spawned: tuple[ProcessorHarness, ProcessorProcess],
) -> None:
    harness, process = spawned
    raw = sealed_sell(f"prop_inline_{uuid.uuid4().hex[:6]}", intents=1_000)
    execution_id = create(harness, f"inline-1000-{uuid.uuid4().hex[:6]}", raw, inline_artifact=raw)
    wait_until(lambda: len(harness.instructions(execution_id)) == 1_000, 120, what="1,000 tickets released")
    next_execution_on_the_partition_completes(harness, expected_partition(execution_id.encode(), harness.partitions))
    still_running_once(process)


def test_a_state_change_the_broker_refuses_for_size_dead_letters_its_input_and_the_partition_goes_on(
    harness: ProcessorHarness,
) -> None:
    # The broker accepts at most 2,000 bytes on the state-change topic: a create of 40 tickets makes a
    # creation change far larger. Its input is dead-lettered (nothing of it lands); a small one passes.
    admin = AdminClient({"bootstrap.servers": harness.bootstrap})
    resource = ConfigResource("topic", harness.topics.execution_state_changes, incremental_configs=[
        ConfigEntry("max.message.bytes", "2000", incremental_operation=AlterConfigOpType.SET)])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)
    process = harness.spawn("p1")
    big = sealed_sell(f"prop_big_{uuid.uuid4().hex[:6]}", intents=40)
    harness.publish_proposal(big)
    key = f"big-{uuid.uuid4().hex[:6]}"
    command_id = harness.create(key, big["proposal_id"], big["version_no"])
    letter = dead_letter_of(harness, lambda d: d["error_type"] == "OutputRefused")
    assert letter["original_topic"] in (harness.topics.admission_decisions, harness.topics.execution_commands)
    assert "MSG_SIZE_TOO_LARGE" in letter["reason"] or "TOO_LARGE" in letter["reason"]
    harness.outputs.drain()  # every result committed so far, read before saying none is CREATED
    assert not any(r["command_id"] == command_id and r["outcome"] == "CREATED"
                   for r in harness.outputs.records[harness.topics.command_results])
    partition = expected_partition(execution_id_for_key(key).encode(), harness.partitions)
    next_execution_on_the_partition_completes(harness, partition)
    still_running_once(process)


def test_a_record_the_producer_refuses_for_size_dead_letters_its_input_and_the_partition_goes_on(
    harness: ProcessorHarness,
) -> None:
    # The producer's own limit (KAFKA_CLIENT_MESSAGE_MAX_BYTES wins over the processor's defaults):
    # produce() refuses at once the changelog record of a proposal version too large for it, so the
    # approved proposal is dead-lettered (nothing of it stored); smaller ones pass.
    process = harness.spawn("p1", env={"KAFKA_CLIENT_MESSAGE_MAX_BYTES": "8000"})
    big = sealed_sell(f"prop_big_{uuid.uuid4().hex[:6]}", intents=60)
    harness.publish_proposal(big, wait_stored=False)
    letter = dead_letter_of(harness, lambda d: d["error_type"] == "OutputRefused")
    assert letter["original_topic"] == harness.topics.approved_proposals
    assert "MSG_SIZE_TOO_LARGE" in letter["reason"]
    next_execution_on_the_partition_completes(harness, 0)
    still_running_once(process)


def test_order_events_produced_with_librdkafkas_crc32_partitioner_are_dead_lettered_naming_the_partitioner(
    spawned: tuple[ProcessorHarness, ProcessorProcess],
) -> None:
    harness, process = spawned
    # An execution whose key the two partitioners put on different partitions (they agree for 1 in `partitions`).
    idempotency_key = next(k for k in (f"crc-{uuid.uuid4().hex[:6]}" for _ in range(100))
                           if crc32_partition(execution_id_for_key(k).encode(), harness.partitions)
                           != expected_partition(execution_id_for_key(k).encode(), harness.partitions))
    execution_id = create(harness, idempotency_key, sealed_sell(f"prop_crc_{uuid.uuid4().hex[:6]}"))
    (ticket_id,) = tickets_of(harness, execution_id)
    key = execution_id.encode()
    wrong = crc32_partition(key, harness.partitions)
    record = translate.order_event_to_record(event(execution_id, ticket_id, 1, OrderEventType.ORDER_ACCEPTED))
    produce_raw(harness, harness.topics.order_events, key, serde.encode("OrderEvent", record), wrong)
    letter = dead_letter_of(harness, lambda d: d["error_type"] == "MisroutedRecord")
    assert "murmur2" in letter["reason"] and "consistent_random, CRC32" in letter["reason"]
    assert "partitioner=murmur2_random" in letter["reason"]
    still_running_once(process)


def test_a_second_processor_on_a_used_state_directory_exits_non_zero_and_the_first_keeps_its_store(
    harness: ProcessorHarness, tmp_path: Path,
) -> None:
    state_dir = tmp_path / "shared-state"
    first = harness.spawn("p1", state_dir=state_dir)
    wait_until(lambda: "restored store executions/" in first.log_path.read_text(errors="replace"), 60,
               what="the first processor ready")
    second = harness.spawn("p2", state_dir=state_dir)
    assert second.process.wait(60) != 0
    log = second.log_path.read_text(errors="replace")
    assert "is owned by another processor" in log and '"instance_id": "p1"' in log
    raw = sealed_sell(f"prop_lock_{uuid.uuid4().hex[:6]}")
    execution_id = create(harness, f"lock-{uuid.uuid4().hex[:6]}", raw)
    ScriptedOms(harness, execution_id=execution_id).run_until(lambda: harness.latest_status(execution_id) == "FILLED")
    still_running_once(first)
    assert "rebuild" not in first.log_path.read_text(errors="replace").lower()


def run_processor_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "processor", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", **env})


def test_a_bad_variable_is_one_line_naming_it_and_exit_status_2_and_help_still_works() -> None:
    bad = run_processor_cli(env={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "PROCESSOR_PARTITIONS": "six"})
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "processor: PROCESSOR_PARTITIONS: Input should be a valid integer, unable to parse string as an integer "
        "(got 'six')"]
    help_run = run_processor_cli("--help", env={"PROCESSOR_PARTITIONS": "six"})
    assert help_run.returncode == 0 and "PROCESSOR_PARTITIONS" in help_run.stdout


def test_a_client_setting_exactly_once_depends_on_is_refused_with_the_reason() -> None:
    refused = run_processor_cli(env={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
                                     "KAFKA_CLIENT_ISOLATION_LEVEL": "read_uncommitted"})
    assert refused.returncode == 2
    assert "KAFKA_CLIENT_ISOLATION_LEVEL='read_uncommitted' refused" in refused.stderr
    assert "exactly-once" in refused.stderr


def test_client_settings_from_the_environment_win_over_the_processors_defaults() -> None:
    from processor import app, config

    loaded = config.load([], {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "KAFKA_CLIENT_SESSION_TIMEOUT_MS": "45000",
                              "KAFKA_CLIENT_COMPRESSION_TYPE": "zstd"})
    assert app.consumer_config(loaded)["session.timeout.ms"] == "45000"
    assert app.producer_config(loaded)["compression.type"] == "zstd"
    assert app.producer_config(loaded)["enable.idempotence"] is True  # what exactly-once needs stays
