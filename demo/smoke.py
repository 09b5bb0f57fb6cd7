"""Smoke run: a real broker, one record of every wire contract through it, and a clean stop.

Starts (or uses) a broker as tests do, creates one topic per contract under a unique prefix,
publishes one example record of each schema in a single Kafka transaction, reads every one
back with a `read_committed` consumer, checks that it decodes to what was sent, deletes the
topics and stops the broker it started. Exit status 0 means every contract made the trip.
"""

from __future__ import annotations

import sys
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from kafka_client.records import decode_value
from kafka_client.topics import NewTopic
from local_kafka.select import kafka_broker
from wire import serde
from wire.examples import SAMPLES
from wire.topics import TOPICS


def first_example(schema_name: str) -> dict[str, Any]:
    return next(record for name, _, record in SAMPLES if name == schema_name)


def run(bootstrap: str) -> int:
    prefix = f"smoke-{uuid.uuid4().hex[:8]}."
    names = {topic.kind: prefix + topic.default_name for topic in TOPICS}
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, 1, 1) for name in names.values()]).values():
        future.result(timeout=30)
    try:
        producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"{prefix}producer"})
        producer.init_transactions(30)
        producer.begin_transaction()
        sent = {}
        for topic in TOPICS:
            record = first_example(topic.value_schema)
            sent[topic.kind] = record
            producer.produce(names[topic.kind], key=topic.key(record), value=serde.encode(topic.value_schema, record))
        producer.commit_transaction(30)

        consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": f"{prefix}reader", "isolation.level": "read_committed",
        })
        consumer.assign([TopicPartition(name, 0, 0) for name in names.values()])
        received: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + 30
        while len(received) < len(names) and time.monotonic() < deadline:
            for message in consumer.consume(10, timeout=1):
                if message.error():
                    continue
                topic = next(t for t in TOPICS if names[t.kind] == message.topic())
                received[topic.kind] = decode_value(serde.codec(topic.value_schema), message)
        consumer.close()
    finally:
        for future in admin.delete_topics(list(names.values())).values():
            future.result(timeout=30)

    failures = 0
    for topic in TOPICS:
        ok = received.get(topic.kind) == sent[topic.kind]
        failures += not ok
        print(f"  {'ok  ' if ok else 'FAIL'} {topic.default_name:26} {topic.value_schema}")
    return 1 if failures else 0


def main() -> int:
    with kafka_broker() as endpoint:
        print(f"Kafka broker: {endpoint.description} at {endpoint.bootstrap_servers}")
        status = run(endpoint.bootstrap_servers)
    print("smoke run passed: every contract made the round trip" if status == 0 else "smoke run FAILED")
    return status


if __name__ == "__main__":
    sys.exit(main())
