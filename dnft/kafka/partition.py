"""Which partition a keyed record goes to: one function every dnft producer shares."""

from __future__ import annotations

import zlib


def partition_for(key: bytes | memoryview, partitions: int) -> int:
    """The partition of a keyed message: CRC-32 of the key modulo the partition count.

    Every dnft producer uses this, so a key always maps to one partition (per-token order).
    It is not Java's murmur2 default: kafka-python computes murmur2 in pure Python, which cost
    a quarter of the indexer's CPU; zlib's CRC-32 is C. Non-dnft producers writing the same
    keys to dnft topics would need the same function.
    """
    return zlib.crc32(key) % partitions
