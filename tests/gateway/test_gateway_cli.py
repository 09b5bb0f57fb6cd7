"""`python -m gateway` as operators run it: environment configuration, health, readiness,
bearer auth, JSON logs with the correlation id and no secrets, clean stop on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import requests

from gateway.auth import token_fingerprint
from local_kafka.broker import free_loopback_port
from testkit.gateway import Stack, create_body, new_key, unique_proposal
from testkit.processor import ROOT, wait_until
from wire.topics import TopicNames

pytestmark = pytest.mark.integration


def get(url: str, **kwargs: object) -> int:
    try:
        return requests.get(url, timeout=5, **kwargs).status_code
    except requests.RequestException:
        return 0


def test_cli_serves_the_api_with_env_configuration_and_stops_on_sigterm(stack: Stack, tmp_path: Path) -> None:
    port = free_loopback_port()
    token, secret = "cli-token-" + os.urandom(6).hex(), "cli-secret-" + os.urandom(6).hex()
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text(f"# advisors\n{token}\n")
    harness = stack.harness
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": harness.bootstrap,
        "PROCESSOR_APPLICATION_ID": harness.application_id,
        "GATEWAY_PORT": str(port),
        "GATEWAY_API_TOKENS_FILE": str(tokens_file),
        "GATEWAY_WEBHOOK_SECRETS": secret,
        "GATEWAY_INSTANCE_ID": "cli-1",
        "GATEWAY_RESULT_TIMEOUT_S": "30",  # a just-started gateway on a loaded runner: three transactional hops
        **{f"TOPIC_{f.name.upper()}": getattr(harness.topics, f.name) for f in fields(TopicNames)},
    }
    log_path = tmp_path / "gateway.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "gateway"], cwd=ROOT, env=env, stdout=log_file,
                                   stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: get(f"{base}/healthz") == 200, 30, interval_s=0.1, what="healthz")
        wait_until(lambda: get(f"{base}/readyz") == 200, 60, interval_s=0.1, what="readyz")
        assert get(f"{base}/rebalance/executions") == 401
        auth = {"Authorization": f"Bearer {token}"}
        proposal = unique_proposal("rfc_accept_all", "cli")
        harness.publish_proposal(proposal)
        created = requests.post(f"{base}/rebalance/executions", json=create_body(proposal), timeout=30,
                                headers={**auth, "Idempotency-Key": new_key("cli"), "X-Correlation-Id": "corr-cli-7"})
        assert created.status_code == 201, created.text
        execution_url = f"{base}/rebalance/executions/{created.json()['execution_id']}"
        wait_until(lambda: get(execution_url, headers=auth) == 200, 30, interval_s=0.2, what="the execution readable")
        assert "gateway_http_requests_total" in requests.get(f"{base}/metrics", timeout=5).text
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(30)
    assert exit_code == 0
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    assert lines, log_path.read_text()
    assert {line["service"] for line in lines} == {"gateway"}
    create_lines = [line for line in lines if line.get("correlation_id") == "corr-cli-7"]
    assert {line["msg"] for line in create_lines} >= {"create execution"}
    assert any(line["msg"].startswith("POST /rebalance/executions 201") for line in create_lines)
    assert any(line.get("execution_id") == created.json()["execution_id"] for line in create_lines)
    [create_line] = [line for line in create_lines if line["msg"] == "create execution"]
    assert create_line["principal"] == token_fingerprint(token)  # a bare token's principal is its fingerprint
    [access_line] = [line for line in create_lines if line["msg"].startswith("POST /rebalance/executions 201")]
    assert (access_line["principal"], access_line["trace_id"]) == (create_line["principal"], create_line["trace_id"])
    assert create_line["claimed_requested_by"] == "advisor_001"
    assert len(create_line["trace_id"]) == 32 and len(create_line["span_id"]) == 16
    text = log_path.read_text()
    assert token not in text and secret not in text
