"""The limit: a raw confluent-kafka transactional consume -> produce pass-through.

Same consumer/producer settings, batch size and commit interval as the processor's loop
(`processor.app`, `processor.runtime.loop`), and no work per record but re-producing it: what the
broker and the client allow one Python process to do with exactly-once.

    python -m bench.passthrough BOOTSTRAP INPUT_TOPIC OUTPUT_TOPIC GROUP [--batch-size 500] [--commit-interval-ms 100]
"""

from __future__ import annotations

import argparse
import json
import signal
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from kafka_client.records import coordinates


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("group")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--commit-interval-ms", type=int, default=100)
    parser.add_argument("--result", help="write {events, seconds} here once the input's end is committed")
    args = parser.parse_args()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap, "group.id": args.group, "enable.auto.commit": False,
        "enable.auto.offset.store": False, "isolation.level": "read_committed", "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "range", "session.timeout.ms": 10_000, "heartbeat.interval.ms": 1_000,
    })
    producer = Producer({
        "bootstrap.servers": args.bootstrap, "transactional.id": f"{args.group}-tx", "enable.idempotence": True,
        "transaction.timeout.ms": 10_000, "partitioner": "murmur2_random", "linger.ms": 5, "compression.type": "lz4",
    })
    producer.init_transactions(30)
    partitions = consumer.list_topics(args.input, timeout=10).topics[args.input].partitions
    ends = {(args.input, p): consumer.get_watermark_offsets(TopicPartition(args.input, p), timeout=10)[1]
            for p in partitions}
    committed = {key: 0 for key in ends}
    first_at: float | None = None
    consumer.subscribe([args.input])
    interval = args.commit_interval_ms / 1000
    open_since: float | None = None
    offsets: dict[tuple[str, int], int] = {}

    def commit() -> None:
        nonlocal open_since
        producer.flush(30)
        producer.send_offsets_to_transaction(
            [TopicPartition(t, p, o) for (t, p), o in offsets.items()], consumer.consumer_group_metadata(), 30)
        producer.commit_transaction(30)
        committed.update(offsets)
        offsets.clear()
        open_since = None

    while not stop:
        messages = consumer.consume(args.batch_size, timeout=0.05)
        if messages and first_at is None:
            first_at = time.monotonic()
        if messages and open_since is None:
            producer.begin_transaction()
            open_since = time.monotonic()
        for m in messages:
            error = m.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    raise SystemExit(f"consumer error: {error}")
                continue
            while True:
                try:
                    producer.produce(args.output, m.value(), m.key())
                    break
                except BufferError:
                    producer.poll(0.05)
            topic, partition, offset = coordinates(m)
            offsets[(topic, partition)] = offset + 1
        if open_since is not None and (len(messages) < args.batch_size or time.monotonic() - open_since >= interval):
            commit()
            if args.result and first_at is not None and all(committed[k] >= e for k, e in ends.items()):
                seconds = time.monotonic() - first_at
                with open(args.result, "w") as f:
                    json.dump({"events": sum(ends.values()), "seconds": seconds}, f)
                args.result = None
    if open_since is not None:
        commit()
    consumer.close()


if __name__ == "__main__":
    main()
