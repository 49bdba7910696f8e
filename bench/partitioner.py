"""Benchmark: the cost per key of dnft's partitioners against kafka-python's pure-Python murmur2.

Times, on the same keys (shaped like the indexer's: ``chain:contract:token``), best of
``--repeat`` passes, each function as the producer calls it:

- ``murmur2``: dnft's default (``dnft.kafka.partition.murmur2_partition``, the native wheel),
  on bytes keys and on memoryview keys (the backfill's keys are slices of one buffer);
- ``crc32``: dnft's former placement (zlib);
- ``kafka_python_murmur2``: ``kafka.partitioner.default.murmur2`` + ``& 0x7fffffff % n``,
  what kafka-python's default partitioner computes per record.

murmur2 is first checked against kafka-python's reference on bytes and memoryview keys, then it
prints ns per key and ratios (``murmur2_vs_crc32=``, ``murmur2_memoryview_vs_crc32=``,
``speedup_vs_kafka_python=``).

    .venv/bin/python -m bench.partitioner [--keys 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

from kafka.partitioner.default import murmur2 as kafka_python_murmur2

from dnft.kafka.partition import crc32_partition, murmur2_partition

PARTITIONS = 6
Placer = Callable[[bytes | memoryview, int], int]


def _kafka_python_partition(key: bytes | memoryview, partitions: int) -> int:
    hashed: int = kafka_python_murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions


def _keys(n: int) -> tuple[list[bytes], list[memoryview]]:
    keys = [f"31337:0x{i * 7919:040x}:{i}".encode() for i in range(n)]
    blob = b"".join(keys)
    view = memoryview(blob)
    views: list[memoryview] = []
    start = 0
    for key in keys:
        views.append(view[start : start + len(key)])
        start += len(key)
    return keys, views


def _ns_per_key(place: Placer, keys: Sequence[bytes | memoryview], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for key in keys:
            place(key, PARTITIONS)
        best = min(best, time.perf_counter() - started)
    return best / len(keys) * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    keys, views = _keys(args.keys)
    for key, view in zip(keys[:2_000], views[:2_000], strict=True):
        expected = _kafka_python_partition(key, PARTITIONS)
        assert murmur2_partition(key, PARTITIONS) == expected, key
        assert murmur2_partition(view, PARTITIONS) == expected, key

    # kafka-python's murmur2 is ~20 us a key: a tenth of the keys keep the run short (the
    # rate is per key, so the ratio holds).
    slow = keys[: max(1, args.keys // 10)]
    murmur2_ns = _ns_per_key(murmur2_partition, keys, args.repeat)
    murmur2_view_ns = _ns_per_key(murmur2_partition, views, args.repeat)
    crc32_ns = _ns_per_key(crc32_partition, keys, args.repeat)
    python_ns = _ns_per_key(_kafka_python_partition, slow, max(1, args.repeat // 2))
    print(f"keys={args.keys} partitions={PARTITIONS} key_bytes={len(keys[-1])}")
    print(f"murmur2_ns_per_key={murmur2_ns:.0f}")
    print(f"murmur2_memoryview_ns_per_key={murmur2_view_ns:.0f}")
    print(f"crc32_ns_per_key={crc32_ns:.0f}")
    print(f"kafka_python_murmur2_ns_per_key={python_ns:.0f}")
    print(f"murmur2_vs_crc32={murmur2_ns / crc32_ns:.2f}")
    print(f"murmur2_memoryview_vs_crc32={murmur2_view_ns / crc32_ns:.2f}")
    print(f"speedup_vs_kafka_python={python_ns / murmur2_ns:.1f}")


if __name__ == "__main__":
    main()
