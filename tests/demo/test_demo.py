"""The README's main command, end to end: the demo's scenarios end in the right states and
nothing it started is left running."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from local_kafka.broker import pid_alive

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_every_scenario_to_its_final_state_and_stops_everything(kafka_bootstrap: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "demo"], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
    )
    output = completed.stdout
    assert completed.returncode == 0, output + completed.stderr
    assert "demo passed" in output
    sections = output.split("\n== ")[1:]
    assert len(sections) == 4
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

    pids = [int(pid) for pid in re.findall(r"\(pid (\d+)\)", output)]
    assert len(pids) == 3
    assert not any(pid_alive(pid) for pid in pids), "a demo process is still running"
    assert re.search(r"stopped: gateway \(exit 0\), mock-oms \(exit 0\), processor \(exit 0\)", output)
