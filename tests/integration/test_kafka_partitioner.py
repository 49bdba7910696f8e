"""dnft places keyed records where every other Kafka client would: on the real broker (tansu),
a record produced by dnft and one produced by kafka-python's default partitioner (a second
client, no partitioner argument) for the same key share a partition."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable
from typing import Any

import asyncpg
import orjson
import pytest

from dnft.config import KafkaSettings, PostgresSettings
from dnft.errors import ConfigError
from dnft.kafka import AsyncProducer, OutgoingMessage, ensure_topics
from dnft.kafka.recorded import check_recorded_partitioner
from dnft.migrations import load_migrations
from tests.support.kafka import produce, quick_kafka, read_topic

PARTITIONS = 6
# Keys shaped like the indexer's (chain:contract:token) and a few others.
KEYS = [f"31337:0x{'ab' * 20}:{token}" for token in range(30)] + [
    "21",
    "foobar",
    "abc",
    "a-little-bit-longer-string",
]


async def _produce_with_dnft(settings: KafkaSettings, topic: str) -> None:
    """Each key twice through dnft: once by ``send_many`` (bytes keys) and once by the
    indexer's ``enqueue_records`` path (memoryview slices of one buffer)."""
    producer = AsyncProducer(settings)
    await producer.start()
    try:
        await producer.send_many(
            [
                OutgoingMessage(topic, orjson.dumps({"by": "dnft", "key": k}), key=k.encode())
                for k in KEYS
            ]
        )
        blob = b"".join(k.encode() for k in KEYS)
        view = memoryview(blob)
        records = []
        start = 0
        for k in KEYS:
            end = start + len(k.encode())
            value = orjson.dumps({"by": "dnft-records", "key": k})
            records.append((view[start:end], value, b"id"))
            start = end
        batch = await producer.enqueue_records(topic, "event-id", lambda: records)
        await batch.acked()
    finally:
        await producer.close()


async def _partitions_by_producer(
    kafka_bootstrap: str, topic: str, settings: KafkaSettings
) -> dict[str, dict[str, int]]:
    """Produce every key with dnft (``settings``) and kafka-python, then read the topic back:
    each producer's partition for each key, as the broker stored them."""
    await ensure_topics(settings, {topic: PARTITIONS})
    await _produce_with_dnft(settings, topic)
    key: Callable[[dict[str, Any]], str] = lambda m: m["key"]  # noqa: E731
    sent = await asyncio.to_thread(
        produce, kafka_bootstrap, topic, [{"by": "kafka-python", "key": k} for k in KEYS], key
    )
    assert sent == len(KEYS)
    stored = await asyncio.to_thread(read_topic, kafka_bootstrap, topic)
    placed: dict[str, dict[str, int]] = {}
    for m in stored:
        assert m["_key"] == m["key"]
        by = placed.setdefault(m["by"], {})
        assert m["key"] not in by, f"{m['by']} stored {m['key']!r} twice"
        by[m["key"]] = m["_partition"]
    assert set(placed) == {"dnft", "dnft-records", "kafka-python"}
    assert all(len(by) == len(KEYS) for by in placed.values())
    return placed


async def test_dnft_and_the_default_partitioner_agree(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    settings = quick_kafka(kafka_bootstrap)
    assert settings.partitioner == "murmur2"  # the default
    placed = await _partitions_by_producer(
        kafka_bootstrap, unique_topic("test.partitioner"), settings
    )
    assert placed["dnft"] == placed["kafka-python"]
    assert placed["dnft-records"] == placed["kafka-python"]
    assert len(set(placed["dnft"].values())) > 1  # spread, not one partition for all


async def test_crc32_setting_keeps_the_former_placement(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    """``kafka.partitioner: crc32`` is honoured by every dnft send path, and differs from
    the default partitioner: why switching a live topic moves keys (docs/runbook.md)."""
    settings = quick_kafka(kafka_bootstrap).model_copy(update={"partitioner": "crc32"})
    placed = await _partitions_by_producer(
        kafka_bootstrap, unique_topic("test.partitioner.crc32"), settings
    )
    assert placed["dnft"] == placed["dnft-records"]
    assert placed["dnft"] == {k: zlib.crc32(k.encode()) % PARTITIONS for k in KEYS}
    moved = [k for k in KEYS if placed["dnft"][k] != placed["kafka-python"][k]]
    assert len(moved) > len(KEYS) // 2


class TestRecordedPartitioner:
    """The partitioner a deployment wrote with is kept in Postgres; another one is refused."""

    async def test_first_producer_records_and_another_is_refused(self, db: str) -> None:
        postgres = PostgresSettings(dsn=db)
        await check_recorded_partitioner(postgres, "murmur2")
        await check_recorded_partitioner(postgres, "murmur2")  # the same again: fine
        with pytest.raises(ConfigError) as refused:
            await check_recorded_partitioner(postgres, "crc32")
        assert refused.value.key == "kafka.partitioner"
        assert "written with 'murmur2'" in str(refused.value)

    async def test_a_deployment_from_before_wrote_with_crc32(self, db: str) -> None:
        """Migration 0009 on a database that has indexed: its topics were CRC-32's."""
        (migration,) = [m for m in load_migrations() if m.version == 9]
        conn = await asyncpg.connect(db)
        try:
            await conn.execute("delete from kafka_partitioner")
            await conn.execute(
                "insert into indexer_checkpoints (network, block_number, block_hash) "
                "values ('l2', 1, '0x01')"
            )
            await conn.execute(migration.sql)
        finally:
            await conn.close()
        with pytest.raises(ConfigError, match="written with 'crc32'"):
            await check_recorded_partitioner(PostgresSettings(dsn=db), "murmur2")
        await check_recorded_partitioner(PostgresSettings(dsn=db), "crc32")
