"""The integrator helpers: publish_proposal validates every file before publishing any and
publishes what the processor reads; sign_webhook signs exactly as the gateway verifies."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from gateway.webhook import SignatureVerifier
from tools import publish_proposal, sign_webhook
from wire import serde

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "proposals" / "rfc_accept_all.json"


def test_sign_webhook_header_is_accepted_by_the_gateway_verifier(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    body = tmp_path / "event.json"
    body.write_bytes(b'{"event_id": "rpt-1", "note": "spaces and\\nnewlines are signed as sent"}\n')
    monkeypatch.setenv("GATEWAY_WEBHOOK_SECRETS", "whsec-new,whsec-old")
    monkeypatch.delenv("WEBHOOK_SECRET", raising=False)

    assert sign_webhook.main([str(body), "--timestamp", "1771408800"]) == 0
    header = capsys.readouterr().out.strip()
    verifier = SignatureVerifier(("whsec-new",), 300)
    verifier.verify(header, body.read_bytes(), now=1771408800)  # raises SignatureError on a mismatch


def test_sign_webhook_without_a_secret_says_which_variable_to_set(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("WEBHOOK_SECRET", raising=False)
    monkeypatch.delenv("GATEWAY_WEBHOOK_SECRETS", raising=False)
    assert sign_webhook.main([str(SAMPLE)]) == 2
    assert "WEBHOOK_SECRET" in capsys.readouterr().err


def test_publish_proposal_with_one_invalid_file_publishes_nothing_and_names_the_problem(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tampered = json.loads(SAMPLE.read_text())
    tampered["portfolio_id"] = "pf_someone_else"
    bad = tmp_path / "tampered.json"
    bad.write_text(json.dumps(tampered))
    # No broker is configured: an attempt to publish would fail differently.
    assert publish_proposal.main([str(SAMPLE), str(bad), "--bootstrap-servers", "127.0.0.1:1"]) == 1
    err = capsys.readouterr().err
    assert "tampered.json: not a valid proposal version" in err and "HASH_MISMATCH" in err
    assert "nothing published" in err


@pytest.mark.integration
def test_publish_proposal_publishes_an_approved_proposal_keyed_by_proposal_id(
        kafka_bootstrap: str, make_topic: Callable[..., str]) -> None:
    topic = make_topic("approved")
    completed = subprocess.run(
        [sys.executable, "-m", "tools.publish_proposal", str(SAMPLE), "--topic", topic,
         "--bootstrap-servers", kafka_bootstrap], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    proposal = json.loads(SAMPLE.read_text())
    assert f"published {proposal['proposal_id']} to {topic}[0]@0" in completed.stdout

    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"{topic}-reader"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    try:
        message = consumer.poll(30)
    finally:
        consumer.close()
    assert message is not None and message.error() is None
    assert message.key() == proposal["proposal_id"].encode()
    record = serde.decode("ApprovedProposal", message.value() or b"", topic=topic, partition=0, offset=0)
    assert (record["proposal_id"], record["version_no"]) == (proposal["proposal_id"], proposal["version_no"])
