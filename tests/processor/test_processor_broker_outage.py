"""Recovery from a broker outage (issue #14): the broker is stopped for 20 s mid-stream and
restarted on the same data directory and port with the project's own tooling; the processor and
the gateway recover by themselves, every create made during the outage completes, and the
committed outputs equal the reference fold (nothing lost, nothing doubled). The broker here is
the test's own, not the session's."""

from __future__ import annotations

import random
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from local_kafka.broker import LocalKafkaBroker, free_loopback_port
from testkit.gateway import Client, LiveGateway, create_body, gateway_config, new_key, unique_proposal
from testkit.processor import ProcessorHarness, wait_until
from testkit.streams import (
    CommittedReader,
    EventStream,
    InputProgress,
    build_event_stream,
    build_executions,
    check_outputs,
    create_all,
    reference_fold,
    wait_until_folded,
)

pytestmark = pytest.mark.integration

OUTAGE_S = 20.0


def create_until_done(client: Client, body: dict, key: str, done: dict[str, str], deadline_s: float) -> None:
    """An advisor's app retrying a create with the same Idempotency-Key until it is answered for good."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            response = client.create(body, key)
        except OSError:
            time.sleep(1)
            continue
        if response.status_code in (200, 201):
            done[key] = response.json()["execution_id"]
            return
        time.sleep(1)  # 202 (queued), 503 (read model or broker away): the same request again


@pytest.mark.timeout(600)  # its own deadlines (180 s each) speak first
def test_broker_stopped_20s_mid_stream_and_restarted_processor_and_gateway_recover_with_nothing_lost(
    tmp_path: Path,
) -> None:
    broker = LocalKafkaBroker(data_dir=tmp_path / "broker").start()
    (tmp_path / "harness").mkdir()
    harness = ProcessorHarness(broker.bootstrap_servers, tmp_path / "harness")
    gateway = None
    reader = None
    try:
        rng = random.Random(20261205)
        planned = build_executions(rng, 20, "prop_outage")
        events = build_event_stream(rng, planned)
        processor = harness.spawn("p1")
        wait_until(lambda: "restored store executions/" in processor.log_path.read_text(errors="replace"), 60,
                   what="the processor ready")
        create_all(harness, planned)
        reference = reference_fold(planned, events)
        gateway = LiveGateway(gateway_config(harness, result_timeout_s=2.0))
        gateway.wait_ready()
        client = Client(gateway.url)

        proposals = [unique_proposal("rfc_accept_all", f"outage{i}") for i in range(3)]
        for proposal in proposals:
            harness.publish_proposal(proposal)
        stream = EventStream(harness, events, per_second=300).start()
        stream.wait_sent(len(events) // 3)
        InputProgress(harness).wait_for(len(events) // 5, 60, "a part of the stream folded before the outage")

        broker.stop()  # SIGTERM: the data directory and port are kept
        stopped_at = time.monotonic()
        done: dict[str, str] = {}
        creators = []
        for proposal in proposals:  # advisors keep working: their creates must complete after the outage
            key = new_key("outage")
            thread = threading.Thread(target=create_until_done, args=(client, create_body(proposal), key, done, 180),
                                      daemon=True)
            thread.start()
            creators.append((proposal, thread))
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped_at)))
        assert processor.process.poll() is None, "the processor exited during the outage"
        broker.start()  # same data directory, same port

        stream.join(timeout_s=180)
        reader = CommittedReader(harness.bootstrap, [harness.topics.execution_state_changes,
                                                     harness.topics.execution_snapshots,
                                                     harness.topics.trade_tickets, harness.topics.dead_letters])
        wait_until_folded(reader, harness, reference, timeout_s=180)
        for _, thread in creators:
            thread.join(180)
        assert len(done) == len(proposals), f"creates made during the outage that did not complete: {done}"
        counts = check_outputs(reader, harness, reference, ignore=set(done.values()))
        for execution_id in done.values():
            body = client.get(f"/rebalance/executions/{execution_id}").json()
            assert body["status"] in ("SUBMITTED", "ACCEPTED", "PARTIALLY_FILLED", "FILLED"), body
        assert processor.process.poll() is None, "the processor exited"
        log = processor.log_path.read_text(errors="replace")
        assert log.count("starting processor") == 1, "the processor restarted"
        assert "transactions are failing" in log, "the outage was not felt: the test proved nothing"
        print(f"outage of {OUTAGE_S:.0f}s: outputs {counts}; creates during the outage {sorted(done)}")
    finally:
        if reader is not None:
            reader.close()
        if gateway is not None:
            gateway.stop()
        harness.close()
        broker.stop()


def test_processor_says_not_ready_while_the_broker_is_away_and_sigterm_ends_it_within_its_shutdown_timeout(
    tmp_path: Path,
) -> None:
    broker = LocalKafkaBroker(data_dir=tmp_path / "broker").start()
    (tmp_path / "harness").mkdir()
    harness = ProcessorHarness(broker.bootstrap_servers, tmp_path / "harness")
    port = free_loopback_port()
    try:
        processor = harness.spawn("p1", extra_args=("--http-port", str(port), "--shutdown-timeout", "10"))
        wait_until(lambda: http_status(port, "/readyz") == 200, 60, what="the processor ready")
        broker.stop()
        wait_until(lambda: http_status(port, "/readyz") == 503, 60, what="/readyz to say the broker is away")
        processor.process.send_signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        processor.process.wait(30)
        # The shutdown timeout (10 s) plus room for the interpreter's exit on a loaded runner.
        assert time.monotonic() - stopped_at < 20, "SIGTERM took longer than the shutdown timeout"
    finally:
        harness.close()
        broker.stop()


def http_status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0
