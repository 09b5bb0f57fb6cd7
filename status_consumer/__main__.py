"""`python -m status_consumer`: follow execution state changes live, as a status consumer would.

Reads the execution-state-changes topic with `read_committed` (only committed changes, each
once) and prints one line per change. Started before the topic exists (the processor creates
it), it says so and waits; it then reads the new topic from its beginning. Errors (Kafka not
reachable, an undecodable record) are reported on stderr, and it carries on.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, KafkaException, TopicPartition

from kafka_client import settings as kafka_settings
from status_consumer.changes import read_change
from status_consumer.format import describe_change
from wire.errors import DecodeError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m status_consumer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    kafka_settings.add_arguments(parser)
    parser.add_argument("--topic", default=os.environ.get("TOPIC_EXECUTION_STATE_CHANGES", "execution-state-changes"),
                        help="the state-changes topic (env TOPIC_EXECUTION_STATE_CHANGES; "
                             "default execution-state-changes)")
    parser.add_argument("--from-beginning", action="store_true",
                        help="replay every change the topic holds first (default: only new changes)")
    parser.add_argument("--execution-id", help="print only this execution's changes (default: all)")
    parser.add_argument("--until-end", action="store_true",
                        help="exit once every partition's committed end is reached (default: follow forever)")
    return parser


def _say(text: str) -> None:
    print(f"status_consumer: {text}", file=sys.stderr, flush=True)


def _wait_for_partitions(consumer: Consumer, topic: str, bootstrap: str, stop: threading.Event) -> list[int] | None:
    """The topic's partitions, once it exists; None if stopped first. Says once per reason why it waits."""
    said = ""
    while not stop.is_set():
        try:
            found = consumer.list_topics(topic, timeout=5).topics.get(topic)
            if found is not None and found.error is None and found.partitions:
                return sorted(found.partitions)
            reason = f"topic {topic} does not exist yet (the processor creates it); waiting"
        except KafkaException as error:
            reason = f"cannot reach Kafka at {bootstrap} ({error.args[0].str()}); retrying"
        if reason != said:
            _say(reason)
            said = reason
        stop.wait(1)
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = kafka_settings.from_arguments(args)
    reported: set[str] = set()

    def on_error(error: KafkaError) -> None:  # librdkafka's background errors, each kind once
        if error.str() not in reported:
            reported.add(error.str())
            _say(f"kafka: {error.str()}")

    config: dict[str, Any] = {
        **settings.base_config(), "group.id": "status-consumer", "isolation.level": "read_committed",
        "enable.auto.commit": False, "enable.partition.eof": True, "error_cb": on_error, "log_level": 0,
    }
    consumer = Consumer(config)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        existed = consumer.list_topics(args.topic, timeout=5).topics.get(args.topic)
        existed_at_start = existed is not None and existed.error is None and bool(existed.partitions)
    except KafkaException:
        existed_at_start = False
    try:
        partitions = _wait_for_partitions(consumer, args.topic, settings.bootstrap_servers, stop)
        if partitions is None:
            return 0
        # A topic created after we started holds only new changes: read it from its beginning.
        start = OFFSET_BEGINNING if args.from_beginning or not existed_at_start else OFFSET_END
        consumer.assign([TopicPartition(args.topic, p, start) for p in partitions])
        if not existed_at_start:
            _say(f"topic {args.topic} exists now; following it")
        return _follow(consumer, args.execution_id, set(partitions) if args.until_end else None, stop)
    finally:
        consumer.close()


def _follow(consumer: Consumer, execution_id: str | None, until_end: set[int] | None, stop: threading.Event) -> int:
    at_end: set[int] = set()
    while not stop.is_set():
        for message in consumer.consume(100, timeout=0.2):
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(message.partition() or 0)
                    continue
                _say(f"kafka: {error.str()}")
                if error.fatal():
                    return 1
                continue
            at_end.discard(message.partition() or 0)
            try:
                change = read_change(message)
            except DecodeError as undecodable:
                _say(f"skipped a record: {undecodable}")
                continue
            if execution_id in (None, change.execution_id):
                print(describe_change(change.record), flush=True)
        if until_end is not None and until_end <= at_end:
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
