"""Messages round-trip through the real broker (tansu) with a consumer group and commits."""

from __future__ import annotations

import asyncio
import uuid

from dnft.kafka import AsyncConsumer, AsyncProducer, ConsumedMessage, OutgoingMessage, ensure_topics
from tests.support.kafka import quick_kafka

PARTITIONS = 3


async def drain(
    consumer: AsyncConsumer, expected: int, timeout_s: float = 30
) -> list[ConsumedMessage]:
    got: list[ConsumedMessage] = []
    deadline = asyncio.get_running_loop().time() + timeout_s
    while len(got) < expected and asyncio.get_running_loop().time() < deadline:
        got.extend(await consumer.poll(timeout_ms=500))
    return got


class TestRoundTrip:
    """Produce, consume in a group, commit part, and resume exactly after the commit."""

    async def test_group_resumes_after_committed_offsets(self, kafka_bootstrap: str) -> None:
        settings = quick_kafka(kafka_bootstrap)
        topic = f"test.roundtrip.{uuid.uuid4().hex[:8]}"
        group = f"g-{uuid.uuid4().hex[:8]}"
        await ensure_topics(settings, {topic: PARTITIONS})

        producer = AsyncProducer(settings)
        await producer.start()
        messages = [
            OutgoingMessage(
                topic,
                value=f"{key}:{seq}".encode(),
                key=f"token-{key}".encode(),
                headers=(("event-id", f"{key}-{seq}".encode()),),
            )
            for seq in range(6)
            for key in range(5)
        ]
        deliveries = await producer.send_many(messages)
        await producer.close()
        assert len(deliveries) == 30
        assert {d.partition for d in deliveries} <= set(range(PARTITIONS))

        first = AsyncConsumer(settings, group_id=group, topics=[topic])
        await first.start()
        got = await drain(first, 30)
        assert sorted(m.value for m in got) == sorted(m.value for m in messages)
        # Same key -> same partition -> sequence order preserved.
        for key in range(5):
            seqs = [int(m.value.split(b":")[1]) for m in got if m.key == f"token-{key}".encode()]
            assert seqs == sorted(seqs)
        assert all(dict(m.headers)["event-id"] for m in got)

        # Commit only the first half of each partition, as if a crash followed.
        by_partition: dict[int, list[ConsumedMessage]] = {}
        for m in got:
            by_partition.setdefault(m.partition, []).append(m)
        committed = {
            (topic, p): ms[len(ms) // 2 - 1].next_offset if len(ms) >= 2 else ms[0].offset
            for p, ms in by_partition.items()
        }
        await first.commit(committed)
        for (t, p), offset in committed.items():
            assert await first.committed(t, p) == offset
        await first.close()

        second = AsyncConsumer(settings, group_id=group, topics=[topic])
        await second.start()
        expected_rest = [m for m in got if m.offset >= committed[(topic, m.partition)]]
        rest = await drain(second, len(expected_rest))
        await asyncio.sleep(0)  # nothing more than the uncommitted tail may arrive
        extra = await second.poll(timeout_ms=500)
        lags = await second.update_lag()
        await second.close()
        assert sorted((m.partition, m.offset) for m in rest) == sorted(
            (m.partition, m.offset) for m in expected_rest
        )
        assert extra == []
        assert all(lag >= 0 for lag in lags.values())
