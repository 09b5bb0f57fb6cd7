"""`python -m mock_oms` as a user runs it: every flag explains itself with its default, and the
process says what it does (a start line, one line per report, a summary on stop)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Producer

from mock_oms.__main__ import build_parser
from wire import serde
from wire.examples import SAMPLES

ROOT = Path(__file__).resolve().parents[2]


def test_mock_oms_help_every_flag_has_help_text() -> None:
    parser = build_parser()
    undocumented = [action.option_strings for action in parser._actions if not (action.help or "").strip()]
    assert undocumented == []
    assert "(default: 20,120)" in " ".join(parser.format_help().split())


@pytest.mark.integration
def test_mock_oms_prints_each_report_it_sends_and_a_summary_on_stop(
        kafka_bootstrap: str, make_topic: Callable[..., str]) -> None:
    tickets, events = make_topic("tickets"), make_topic("events")
    submit = next(r for name, _, r in SAMPLES if name == "TicketInstruction" and r["instruction"] == "SUBMIT")
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(tickets, key=submit["ticket"]["ticket_id"].encode(), value=serde.encode("TicketInstruction", submit))
    assert producer.flush(30) == 0

    process = subprocess.Popen(
        [sys.executable, "-m", "mock_oms", "--tickets-topic", tickets, "--order-events-topic", events,
         "--group-id", f"{tickets}-oms"], cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap})
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith(f"mock OMS: reading {tickets}"), first
        lines = [process.stdout.readline() for _ in range(2)]  # accept_and_fill: accepted, then filled
        assert lines[0].startswith("-> ORDER_ACCEPTED") and lines[1].startswith("-> FILLED"), lines
        assert submit["ticket"]["ticket_id"] in lines[1] and " fill " in lines[1]
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == 0
    assert "mock OMS stopped: 1 instructions handled, 2 reports sent" in rest
