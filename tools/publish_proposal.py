"""`python -m tools.publish_proposal FILE...`: publish approved proposals as the upstream system would.

Each FILE is one proposal version as JSON (RFC §3, e.g. samples/proposals/*.json). Every file
is validated first (content hash included); if any is invalid nothing is published. The rest
go to the approved-proposals topic as `ApprovedProposal` records keyed by `proposal_id`, with the
murmur2 partitioner the processor relies on, and each delivery is confirmed before it exits.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from execution_domain import ArtifactInvalid, ProposalArtifact, parse_artifact
from kafka_client import settings as kafka_settings
from wire import records, serde


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.publish_proposal", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="a proposal version as JSON")
    parser.add_argument("--topic", default=os.environ.get("TOPIC_APPROVED_PROPOSALS", "approved-proposals"),
                        help="env TOPIC_APPROVED_PROPOSALS; default approved-proposals")
    kafka_settings.add_arguments(parser)
    return parser


def load(path: Path) -> ProposalArtifact:
    """The validated artifact in `path`; ValueError with every problem otherwise."""
    try:
        raw: Any = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot read it ({error})") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not JSON ({error})") from None
    try:
        return parse_artifact(raw)
    except ArtifactInvalid as invalid:
        problems = "; ".join(f"{p.path}: {p.code} {p.message}" for p in invalid.problems)
        raise ValueError(f"{path}: not a valid proposal version: {problems}") from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    artifacts: list[ProposalArtifact] = []
    for path in args.files:
        try:
            artifacts.append(load(path))
        except ValueError as error:
            print(f"publish_proposal: {error}", file=sys.stderr)
            print("publish_proposal: nothing published", file=sys.stderr)
            return 1
    settings = kafka_settings.from_arguments(args)
    producer = Producer({**settings.base_config(), "partitioner": "murmur2_random", "enable.idempotence": True,
                         "delivery.timeout.ms": 15000})
    failures: list[str] = []

    def report(error: KafkaError | None, message: Message) -> None:
        key = (message.key() or b"").decode()
        if error is not None:
            failures.append(f"{key}: {error.str()}")
        else:
            print(f"published {key} to {message.topic()}[{message.partition()}]@{message.offset()}")

    for artifact in artifacts:
        record = records.artifact_to_record(artifact)
        producer.produce(args.topic, key=artifact.proposal_id.encode(), value=serde.encode("ApprovedProposal", record),
                         on_delivery=report)
        print(f"{artifact.proposal_id} v{artifact.version_no} ({artifact.gate_decision.decision}, "
              f"{len(artifact.trades_and_funding.intents)} intents) -> {args.topic}")
    left = producer.flush(30)
    if failures or left:
        for failure in failures:
            print(f"publish_proposal: not published: {failure}", file=sys.stderr)
        if left:
            print(f"publish_proposal: {left} record(s) not confirmed by {settings.bootstrap_servers} within 30 s",
                  file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
