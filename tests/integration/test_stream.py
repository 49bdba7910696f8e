"""The consume-process-commit loop against the real broker: commit after effects, DLQ, cap."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from dnft.kafka import AsyncConsumer, AsyncProducer, OutgoingMessage, ensure_topics
from dnft.stream import (
    Decoded,
    InvalidMessage,
    PoisonPolicy,
    PoisonRatioExceeded,
    StreamProcessor,
)
from tests.support.kafka import quick_kafka
from tests.support.wait import wait_until


def decode(message: object) -> int:
    value = getattr(message, "value", b"")
    if not value.isdigit():
        raise InvalidMessage(f"not a number: {value[:20]!r}")
    return int(value)


def dlq_records(bootstrap: str, topic: str) -> list[dict[str, object]]:
    consumer = KafkaConsumer(bootstrap_servers=[bootstrap], consumer_timeout_ms=3000)
    parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
    if not parts:
        return []
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    out = [orjson.loads(r.value) for r in consumer]
    consumer.close()
    return out


async def produce(bootstrap: str, topic: str, values: Sequence[bytes]) -> None:
    producer = AsyncProducer(quick_kafka(bootstrap))
    await producer.start()
    await producer.send_many([OutgoingMessage(topic, v, key=b"k") for v in values])
    await producer.close()


class TestStreamProcessor:
    """Offsets move only after the handler's effects; bad messages go to the DLQ."""

    async def test_process_dlq_commit_and_replay(
        self, kafka_bootstrap: str, unique_topic: Callable[[str], str]
    ) -> None:
        topic, dlq_topic = unique_topic("in"), unique_topic("dlq")
        group = f"g-{uuid.uuid4().hex[:8]}"
        kafka = quick_kafka(kafka_bootstrap)
        await ensure_topics(kafka, {topic: 1, dlq_topic: 1})
        await produce(kafka_bootstrap, topic, [b"1", b"2", b"oops", b"3", b"4"])
        seen: list[int] = []
        fail_once = [True]

        async def process(batch: Sequence[Decoded[int]]) -> None:
            if fail_once[0]:
                fail_once[0] = False
                raise RuntimeError("database down")
            seen.extend(d.value for d in batch)

        dlq = AsyncProducer(kafka)
        await dlq.start()
        try:
            for attempt in range(2):
                consumer = AsyncConsumer(kafka, group_id=group, topics=[topic])
                await consumer.start()
                processor = StreamProcessor(
                    consumer, decode=decode, process=process, dlq=dlq, dlq_topic=dlq_topic
                )
                stopping = asyncio.Event()
                task = asyncio.create_task(processor.run(stopping))
                try:
                    if attempt == 0:  # the handler fails: nothing may be committed
                        with pytest.raises(RuntimeError, match="database down"):
                            await asyncio.wait_for(task, 30)
                        assert await consumer.committed(topic, 0) is None
                    else:  # a new member replays the batch, then commits past it
                        await wait_until(lambda: len(seen) == 4, 30, "replayed batch")
                        stopping.set()
                        await asyncio.wait_for(task, 10)
                        assert await consumer.committed(topic, 0) == 5
                finally:
                    await consumer.close()
        finally:
            await dlq.close()
        assert seen == [1, 2, 3, 4]
        dead = dlq_records(kafka_bootstrap, dlq_topic)
        assert [d["offset"] for d in dead] == [2, 2]  # once per attempt: DLQ before the commit
        assert "not a number" in str(dead[0]["reason"])

    async def test_poison_ratio_stops_the_consumer(
        self, kafka_bootstrap: str, unique_topic: Callable[[str], str]
    ) -> None:
        topic, dlq_topic = unique_topic("in"), unique_topic("dlq")
        kafka = quick_kafka(kafka_bootstrap)
        await ensure_topics(kafka, {topic: 1, dlq_topic: 1})
        await produce(kafka_bootstrap, topic, [b"1"] * 20 + [b"bad"] * 200)

        async def process(batch: Sequence[Decoded[int]]) -> None:
            return None

        consumer = AsyncConsumer(kafka, group_id=f"g-{uuid.uuid4().hex[:8]}", topics=[topic])
        await consumer.start()
        dlq = AsyncProducer(kafka)
        await dlq.start()
        processor = StreamProcessor(
            consumer,
            decode=decode,
            process=process,
            dlq=dlq,
            dlq_topic=dlq_topic,
            poison=PoisonPolicy(max_ratio=0.2, window=50, min_invalid=5),
            max_batch=10,
        )
        try:
            with pytest.raises(PoisonRatioExceeded, match="rather than draining"):
                await asyncio.wait_for(processor.run(asyncio.Event()), 30)
        finally:
            await consumer.close()
            await dlq.close()
        # It stopped early: most bad messages were neither dead-lettered nor committed past.
        assert len(dlq_records(kafka_bootstrap, dlq_topic)) < 20
