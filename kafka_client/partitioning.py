"""Which partition a key belongs to: Kafka's murmur2 (the Java clients' default partitioner, and
librdkafka's `partitioner=murmur2_random`) and librdkafka's default CRC32 (`consistent_random`).

The processor relies on co-partitioning: every producer of a keyed input must put a key where
murmur2 puts it. `expected_partition` says where that is; `crc32_partition` tells the most common
mistake (a librdkafka producer left at its default partitioner) apart from others.
"""

from __future__ import annotations

import zlib

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash (org.apache.kafka.common.utils.Utils.murmur2), as a signed 32-bit int."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    rest = length % 4
    if rest == 3:
        h ^= data[whole + 2] << 16
    if rest >= 2:
        h ^= data[whole + 1] << 8
    if rest >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def expected_partition(key: bytes, partitions: int) -> int:
    """Where murmur2 puts `key`: Kafka's `toPositive(murmur2(key)) % partitions`."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def crc32_partition(key: bytes, partitions: int) -> int:
    """Where librdkafka's default partitioner (consistent_random: CRC32) puts a non-empty key."""
    return zlib.crc32(key) % partitions


def misrouting(key: bytes | None, partition: int, partitions: int) -> str | None:
    """Why a record with `key` does not belong on `partition` of `partitions`, or None if it does."""
    if key is None or not key:
        return "the record has no key: every keyed input must be keyed (and partitioned by murmur2)"
    expected = expected_partition(key, partitions)
    if expected == partition:
        return None
    shown = key[:80].decode("utf-8", "replace")
    reason = (f"key {shown!r} belongs to partition {expected} of {partitions} by murmur2 (the Java clients' "
              f"default partitioner), but was read from partition {partition}")
    if crc32_partition(key, partitions) == partition:
        reason += ("; that is where librdkafka's default partitioner (consistent_random, CRC32) puts it: set "
                   "partitioner=murmur2_random on the producer")
    return reason
