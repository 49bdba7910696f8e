"""The partitioners against the Java client's algorithm and kafka-python's reference."""

from __future__ import annotations

import random
import zlib

import pytest
from kafka.partitioner.default import DefaultPartitioner
from kafka.partitioner.default import murmur2 as reference_murmur2

from dnft.config import KafkaSettings
from dnft.kafka.partition import (
    crc32_partition,
    murmur2,
    murmur2_partition,
    partition_for,
    partitioner,
)

# Apache Kafka's UtilsTest.testMurmur2 (clients/src/test/java/.../utils/UtilsTest.java): Java's
# Utils.murmur2 of these keys, as signed ints.
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("key", "java"), JAVA_MURMUR2.items())
def test_murmur2_matches_java(key: bytes, java: int) -> None:
    assert murmur2(key) == java & 0xFFFFFFFF
    # Java's DefaultPartitioner: toPositive(murmur2(key)) % n, toPositive being & 0x7fffffff.
    for n in (1, 3, 6, 7, 100, 10_000):
        assert murmur2_partition(key, n) == (java & 0x7FFFFFFF) % n


class _Cluster:
    """The three questions kafka-python's DefaultPartitioner asks its cluster metadata."""

    def __init__(self, partitions: int) -> None:
        self._partitions = set(range(partitions))

    def topics(self) -> set[str]:
        return {"t"}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return self._partitions

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return self._partitions


def test_murmur2_matches_kafka_python_on_random_keys() -> None:
    rng = random.Random(20)
    default = DefaultPartitioner()
    clusters = {n: _Cluster(n) for n in (1, 6, 12, 97)}
    for _ in range(3_000):
        key = rng.randbytes(rng.randrange(0, 130))  # every tail length (0-3 bytes), long keys
        assert murmur2(key) == reference_murmur2(key) & 0xFFFFFFFF
        for n, cluster in clusters.items():
            expected = default.partition("t", None, key, None, None, cluster)
            assert murmur2_partition(key, n) == expected


def test_memoryview_keys_hash_like_bytes() -> None:
    # The backfill hands keys as memoryview slices of one buffer.
    blob = b"prefix" + b"31337:0xabcdef:42" + b"suffix"
    view = memoryview(blob)[6:-6]
    assert murmur2_partition(view, 6) == murmur2_partition(bytes(view), 6)
    assert crc32_partition(view, 6) == crc32_partition(bytes(view), 6)


def test_crc32_keeps_the_former_placement() -> None:
    for key in (b"21", b"token-1", b"31337:0xab:7"):
        assert crc32_partition(key, 6) == zlib.crc32(key) % 6


def test_partitioner_by_name_and_default() -> None:
    assert partitioner("murmur2") is murmur2_partition
    assert partitioner("crc32") is crc32_partition
    key = b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"
    assert partition_for(key, 1000) == (-58897971 & 0x7FFFFFFF) % 1000
    assert partition_for(key, 1000, "crc32") == zlib.crc32(key) % 1000
    # The two disagree for most keys: switching a live topic moves its keys.
    keys = [f"token-{i}".encode() for i in range(100)]
    moved = sum(murmur2_partition(k, 6) != crc32_partition(k, 6) for k in keys)
    assert moved > 50


def test_setting_defaults_to_murmur2_and_refuses_others() -> None:
    assert KafkaSettings(bootstrap_servers=["k:9092"]).partitioner == "murmur2"
    assert KafkaSettings(bootstrap_servers=["k:9092"], partitioner="crc32").partitioner == "crc32"
    with pytest.raises(ValueError, match="partitioner"):
        KafkaSettings(bootstrap_servers=["k:9092"], partitioner="random")
