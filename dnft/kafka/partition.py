"""Which partition a keyed record goes to: one function every dnft producer shares.

``murmur2`` (the default) is the Java client's default partitioner, byte for byte:
``toPositive(murmur2(key)) % partitions`` with seed 0x9747b28c, as librdkafka's
``murmur2_random``, Kafka Streams, Kafka Connect and kafka-python's default place keys. Any
other producer writing dnft keys, and any co-partitioned join, then agrees with dnft.

``crc32`` is what dnft used before (CRC-32 of the key): kept for topics that already hold
keys placed by it. Switching a live topic moves keys to other partitions and breaks per-key
order for records in flight (docs/runbook.md, "Kafka partitioner").

The hash is the ``murmurhash2`` wheel (Rust, about 30x kafka-python's pure-Python murmur2,
which cost a quarter of the indexer's CPU; bench/partitioner.py measures both).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

from murmurhash2 import murmurhash2

from dnft.config.kafka import PartitionerName

Partitioner = Callable[[bytes | memoryview, int], int]

MURMUR2_SEED = 0x9747B28C


def murmur2(key: bytes | memoryview) -> int:
    """Kafka's murmur2 of ``key`` as an unsigned 32-bit int (Java's ``Utils.murmur2`` & 2**32-1)."""
    # The binding takes bytes only; the backfill's keys are memoryview slices of one blob.
    return murmurhash2(key if key.__class__ is bytes else bytes(key), MURMUR2_SEED)


def murmur2_partition(key: bytes | memoryview, partitions: int) -> int:
    """The Java client's default partition for ``key``: ``toPositive(murmur2(key)) % n``."""
    # murmur2() inlined: one Python call per record less on the producer's hot path.
    if key.__class__ is not bytes:
        key = bytes(key)
    return (murmurhash2(key, MURMUR2_SEED) & 0x7FFFFFFF) % partitions


def crc32_partition(key: bytes | memoryview, partitions: int) -> int:
    """dnft's former placement: CRC-32 of the key modulo the partition count."""
    return zlib.crc32(key) % partitions


PARTITIONERS: dict[PartitionerName, Partitioner] = {
    "murmur2": murmur2_partition,
    "crc32": crc32_partition,
}


def partitioner(name: PartitionerName) -> Partitioner:
    """The placement function named by ``kafka.partitioner``."""
    return PARTITIONERS[name]


def partition_for(
    key: bytes | memoryview, partitions: int, name: PartitionerName = "murmur2"
) -> int:
    """The partition of a keyed message under partitioner ``name`` (the default: murmur2).

    Every dnft producer places keyed records itself with the configured partitioner, so a
    key always maps to one partition (per-token order) whichever daemon sends it.
    """
    return PARTITIONERS[name](key, partitions)
