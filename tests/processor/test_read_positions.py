"""How far the loop has read each input partition (processor.runtime.positions): positions only
move forward until forgotten, and end offsets are asked once per partition per batch."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from processor.runtime.positions import ReadPositions


def test_read_positions_keep_the_furthest_offset_of_records_and_end_events() -> None:
    positions = ReadPositions()
    assert positions.read_to("t", 0) is None
    positions.advanced("t", 0, 5)  # a record at offset 4 handed to its task
    positions.advanced("t", 0, 7)  # the end reported past a commit marker
    positions.advanced("t", 0, 6)  # an older report does not move it back
    assert positions.read_to("t", 0) == 7 and positions.read_to("t", 1) is None


def test_read_positions_revoked_partitions_and_every_partition_after_a_rewind_are_unknown_again() -> None:
    positions = ReadPositions()
    for partition in (0, 1, 2):
        positions.advanced("t", partition, 10)
    positions.forget([TopicPartition("t", 1)])
    assert [positions.read_to("t", p) for p in (0, 1, 2)] == [10, None, 10]
    positions.forget_all()
    assert [positions.read_to("t", p) for p in (0, 1, 2)] == [None, None, None]


def test_read_positions_end_offset_is_asked_once_per_partition_per_batch() -> None:
    asked: list[tuple[str, int]] = []
    ends = {0: 40, 1: 7}

    def end_offset(tp: TopicPartition) -> int:
        asked.append((tp.topic, tp.partition))
        return ends[tp.partition]

    positions = ReadPositions(end_offset)
    assert [positions.end_offset("t", 0), positions.end_offset("t", 0), positions.end_offset("t", 1)] == [40, 40, 7]
    assert asked == [("t", 0), ("t", 1)]
    ends[0] = 41
    positions.new_batch()
    assert positions.end_offset("t", 0) == 41 and len(asked) == 3


def test_read_positions_end_offset_is_unknown_without_a_broker_or_when_it_does_not_answer() -> None:
    assert ReadPositions().end_offset("t", 0) is None

    def refuses(tp: TopicPartition) -> int:
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "no answer"))

    assert ReadPositions(refuses).end_offset("t", 0) is None
    assert ReadPositions(lambda tp: -1).end_offset("t", 0) is None  # librdkafka's "no offset"
