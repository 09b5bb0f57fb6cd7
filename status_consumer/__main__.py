"""`python -m status_consumer`: follow execution state changes live, as a status consumer would.

Reads the execution-state-changes topic with `read_committed` (only committed changes, each
once) and prints one line per change; `--from-beginning` replays history first.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

from kafka_client import settings as kafka_settings
from status_consumer.format import describe_change
from wire import serde

_CHANGE = serde.codec("ExecutionStateChange")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m status_consumer", description=__doc__)
    kafka_settings.add_arguments(parser)
    parser.add_argument("--topic", default=os.environ.get("TOPIC_EXECUTION_STATE_CHANGES", "execution-state-changes"))
    parser.add_argument("--from-beginning", action="store_true", help="replay every change first")
    parser.add_argument("--execution-id", help="only this execution")
    args = parser.parse_args(argv)

    consumer = Consumer({**kafka_settings.from_arguments(args).base_config(), "group.id": "status-consumer",
                         "isolation.level": "read_committed", "enable.auto.commit": False})
    partitions = consumer.list_topics(args.topic, timeout=10).topics[args.topic].partitions
    start = OFFSET_BEGINNING if args.from_beginning else OFFSET_END
    consumer.assign([TopicPartition(args.topic, p, start) for p in partitions])
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        while not stop.is_set():
            for message in consumer.consume(100, timeout=0.2):
                if message.error():
                    continue
                change = _CHANGE.decode(message.value(), topic=message.topic(), partition=message.partition(),
                                        offset=message.offset())
                if args.execution_id in (None, change["execution_id"]):
                    print(describe_change(change), flush=True)
    finally:
        consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
