"""`python -m processor` as operators run it: flags and environment, /healthz, /readyz and
/metrics with the RFC §11 names, JSON logs with the domain identifiers, clean SIGTERM stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import fields

import pytest

from local_kafka.broker import free_loopback_port
from testkit.processor import ROOT, ProcessorHarness, ScriptedOms, load_sample, wait_until
from wire.topics import TopicNames

pytestmark = pytest.mark.integration


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


def test_processor_cli_serves_health_readiness_metrics_and_json_logs(harness: ProcessorHarness, tmp_path) -> None:
    port = free_loopback_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": harness.bootstrap,
        "PROCESSOR_STATE_DIR": str(tmp_path / "state"),
        "PROCESSOR_HTTP_PORT": str(port),
        **{f"TOPIC_{f.name.upper()}": getattr(harness.topics, f.name) for f in fields(TopicNames)},
    }
    log_path = tmp_path / "processor.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "processor", "--application-id", harness.application_id, "--instance-id", "cli-1"],
            cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_get(f"{base}/healthz")[0] == 200, 30, what="healthz")
        wait_until(lambda: http_get(f"{base}/readyz")[0] == 200, 60, what="readyz")

        raw = load_sample("rfc_accept_all")
        harness.publish_proposal(raw)
        result = harness.result(harness.create("k-cli", raw["proposal_id"], raw["version_no"]))
        ScriptedOms(harness).run_until(lambda: harness.latest_status(result["execution_id"]) == "FILLED")

        status, metrics = http_get(f"{base}/metrics")
        assert status == 200
        for name in (
            'executions_created_total{status="CREATED"} 1.0',
            'tickets_submitted_total{type="SECURITY_ORDER"}',
            "tickets_rejected_total",
            'execution_latency_ms_bucket{le="1.0",stage="fill"}',
            "processor_consumer_lag",
            "processor_batch_records_count",
            "processor_commit_latency_ms_count",
            "processor_restored_records_total",
            "processor_assigned_partitions",
        ):
            assert name in metrics, name
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(60)

    assert exit_code == 0
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    created = [line for line in lines if line["msg"] == "execution created"]
    assert created and created[0]["execution_id"] == result["execution_id"]
    assert created[0]["proposal_id"] == raw["proposal_id"] and created[0]["version_no"] == raw["version_no"]
    assert created[0]["correlation_id"]
    assert any(line["msg"].startswith("processor cli-1 stopped") for line in lines)
