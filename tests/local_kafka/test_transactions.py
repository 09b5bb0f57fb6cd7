"""The broker supports what exactly-once processing needs: a transactional consume-produce
loop with `send_offsets_to_transaction`, and aborted records hidden from `read_committed`."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

pytestmark = pytest.mark.integration


def _consume_all(bootstrap: str, topic: str, *, isolation: str, expected_at_least: int = 0) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": isolation,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    values: list[bytes] = []
    idle_polls = 0
    try:
        # Read until the partition end has been seen twice in a row after the expected count.
        while idle_polls < 3:
            message = consumer.poll(1.0)
            if message is None:
                if len(values) >= expected_at_least:
                    idle_polls += 1
                continue
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise AssertionError(message.error())
            values.append(message.value())
    finally:
        consumer.close()
    return values


def test_aborted_transaction_is_invisible_to_read_committed_consumer(kafka_bootstrap: str, make_topic) -> None:
    source, sink = make_topic("source"), make_topic("sink")
    group_id = f"txn-loop-{uuid.uuid4().hex}"
    plain_producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    for index in range(4):
        plain_producer.produce(source, value=f"in-{index}".encode())
    assert plain_producer.flush(30) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": group_id,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": f"txn-{uuid.uuid4().hex}"})
    producer.init_transactions(30)
    consumer.subscribe([source])
    try:
        batch = []
        while len(batch) < 4:
            batch.extend(m for m in consumer.consume(4 - len(batch), timeout=5) if not m.error())

        # Transaction 1 processes the first two inputs and commits them with their offsets.
        producer.begin_transaction()
        for message in batch[:2]:
            producer.produce(sink, value=b"committed:" + message.value())
        producer.send_offsets_to_transaction(
            [TopicPartition(source, 0, batch[1].offset() + 1)], consumer.consumer_group_metadata(), 30
        )
        producer.commit_transaction(30)

        # Transaction 2 processes the other two, then aborts: outputs and offsets vanish.
        producer.begin_transaction()
        for message in batch[2:]:
            producer.produce(sink, value=b"aborted:" + message.value())
        producer.flush(30)  # the records really reach the log before the abort
        producer.send_offsets_to_transaction(
            [TopicPartition(source, 0, batch[3].offset() + 1)], consumer.consumer_group_metadata(), 30
        )
        producer.abort_transaction(30)
        committed_offsets = consumer.committed([TopicPartition(source, 0)], timeout=30)
    finally:
        consumer.close()

    committed_view = _consume_all(kafka_bootstrap, sink, isolation="read_committed", expected_at_least=2)
    uncommitted_view = _consume_all(kafka_bootstrap, sink, isolation="read_uncommitted", expected_at_least=4)

    assert committed_view == [b"committed:in-0", b"committed:in-1"]
    assert sorted(uncommitted_view) == sorted(
        [b"committed:in-0", b"committed:in-1", b"aborted:in-2", b"aborted:in-3"]
    )
    # Only the committed transaction's consumer offset took effect: a restart resumes at in-2.
    assert committed_offsets[0].offset == 2
