"""The README's main command, end to end: the demo's scenarios end in the right states, its
guarantees act shows every guarantee holding, its output fits 100 columns, and nothing it
started is left running."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from local_kafka.broker import pid_alive

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_every_scenario_and_the_guarantees_act_within_100_columns_and_stops_everything(
        kafka_bootstrap: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "demo"], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
    )
    output = completed.stdout
    assert completed.returncode == 0, output + completed.stderr
    assert "demo passed" in output
    assert [line for line in output.splitlines() if len(line) > 100] == []
    sections = output.split("\n== ")[1:]
    assert len(sections) == 5
    expectations = {
        "SGD portfolio": "expected FILLED: ok",
        "every ticket accepted and filled": "expected FILLED: ok",
        "the FX ticket is rejected": "expected REJECTED: ok",
        "partial fill, then fill": "expected PARTIALLY_FILLED then FILLED: ok",
    }
    for title, verdict in expectations.items():
        section = next(s for s in sections if title in s)
        assert verdict in section, section
    fx_section = next(s for s in sections if "the FX ticket is rejected" in s)
    assert "dependent BUYs never released: ok" in fx_section
    assert re.search(r"BUY US_EQ_ETF \d+\s+CANCELLED", fx_section)
    # The multi-currency execution converts SGD to USD before buying the USD ETF.
    sgd = next(s for s in sections if "SGD portfolio" in s)
    assert "FX buy" in sgd and "USD / sell SGD" in sgd

    guarantees = next(s for s in sections if s.startswith("Guarantees"))
    for verdict in ("retried create answered with the same execution: ok", "tickets released once",
                    "each applied once, every ticket filled exactly its quantity: ok", "execution ended FILLED: ok",
                    "across the crash: none missing, none twice: ok"):
        assert verdict in " ".join(guarantees.split()), guarantees
    assert re.search(r"cancel: exec_\w+ CANCELLED", guarantees) and "processor SIGKILLed" in guarantees
    assert "NOT MET" not in output

    pids = [int(pid) for pid in re.findall(r"\(pid\s+(\d+)\)", output)]
    assert len(set(pids)) >= 5  # processor, mock OMS, gateway, then the restarted processor and mock OMS
    assert not any(pid_alive(pid) for pid in pids), "a demo process is still running"
    stopped = " ".join(output.split("\nstopped: ", 1)[1].split())
    assert sorted(re.findall(r"(\S+) \(exit 0\)", stopped)) == ["gateway", "mock-oms", "processor"], stopped


def test_demo_through_fix_ends_every_scenario_as_expected_and_prints_the_fix_traffic(kafka_bootstrap: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "demo", "--oms", "fix"], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
    )
    output = completed.stdout
    assert completed.returncode == 0, output + completed.stderr
    assert "demo passed" in output and "NOT MET" not in output
    assert [line for line in output.splitlines() if len(line) > 100] == []
    assert output.count("expected FILLED: ok") == 2 and "expected REJECTED: ok" in output
    assert "field=40" in output and "tickets after the refused ones never sent: ok" in output
    traffic = output.split("== FIX traffic", 1)[1]
    assert re.search(r"out: Logon 1, NewOrderSingle \d+", traffic) and "Reject 2" in traffic
    pids = [int(pid) for pid in re.findall(r"\(pid\s+(\d+)\)", output)]
    assert len(pids) >= 4 and not any(pid_alive(pid) for pid in pids), "a demo process is still running"


def test_demo_with_the_registry_writes_every_topic_in_the_confluent_framing_and_ends_as_expected(
    kafka_bootstrap: str, registry_url: str,
) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "demo", "--registry", "--scenario", "rfc_accept_all", "--scenario", "rfc_fx_reject"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "SCHEMA_REGISTRY_URL": registry_url},
    )
    output = completed.stdout
    assert completed.returncode == 0, output + completed.stderr
    assert f"Schema registry: SCHEMA_REGISTRY_URL={registry_url}" in output
    assert "demo passed" in output and "expected FILLED: ok" in output and "expected REJECTED: ok" in output
    subjects = requests.get(f"{registry_url}/subjects", timeout=10).json()
    assert any(subject.endswith("execution-state-changes-value") for subject in subjects), subjects
    assert any(subject.endswith("approved-proposals-value") for subject in subjects), subjects
