"""The test broker from outside the code under test: settings that keep group joins quick on
tansu, a whole-topic reader, and an acknowledged JSON producer (kafka-python, not dnft's
clients, so a client bug cannot hide on both sides)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from dnft.config import ConsumerSettings, KafkaSettings

# Tansu holds a first JoinGroup for half the session timeout: short values keep joins quick.
QUICK_CONSUMER: dict[str, int] = {
    "session_timeout_ms": 6000,
    "heartbeat_interval_ms": 2000,
    "max_poll_interval_ms": 10000,
}


def quick_kafka(bootstrap: str) -> KafkaSettings:
    """Kafka settings for ``bootstrap`` with :data:`QUICK_CONSUMER` timeouts."""
    return KafkaSettings(bootstrap_servers=[bootstrap], consumer=ConsumerSettings(**QUICK_CONSUMER))


def read_topic(
    bootstrap: str, topic: str, timeout_s: float = 30.0, quiet_s: float = 1.0
) -> list[dict[str, Any]]:
    """Every message on ``topic`` from the beginning, decoded, in partition order.

    Reads until no record arrived for ``quiet_s``: tansu's ListOffsets under-reports the end
    of a partition (measured: 1,918 of 3,083 right after producing), so end offsets cannot
    tell when everything was read. Callers only read after their producers were acknowledged.
    """
    consumer = KafkaConsumer(bootstrap_servers=[bootstrap], enable_auto_commit=False)
    try:
        deadline = time.monotonic() + timeout_s
        partitions = None
        while partitions is None and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic)
            if partitions is None:
                time.sleep(0.2)
        assert partitions, f"topic {topic} does not exist"
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: list[dict[str, Any]] = []
        last = time.monotonic()
        while time.monotonic() - last < quiet_s and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=200).items():
                last = time.monotonic()
                for r in records:
                    body = orjson.loads(r.value)
                    body["_partition"] = tp.partition
                    body["_key"] = r.key.decode() if r.key else None
                    out.append(body)
        return out
    finally:
        consumer.close()


def produce(
    bootstrap: str,
    topic: str,
    messages: Iterable[dict[str, Any]],
    key: Callable[[dict[str, Any]], str],
) -> int:
    """Send each message as JSON under ``key(message)`` and flush (acknowledged by the
    broker); returns how many were sent."""
    producer = KafkaProducer(bootstrap_servers=[bootstrap], acks="all")
    count = 0
    try:
        for m in messages:
            producer.send(topic, orjson.dumps(m), key=key(m).encode())
            count += 1
        producer.flush(30)
    finally:
        producer.close()
    return count
