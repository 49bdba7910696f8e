"""The consume-process-commit loop against the real broker: commit after effects, DLQ, cap;
nothing a message carries stops the consumer, while a dependency error commits nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from dnft import metrics
from dnft.errors import ServiceError
from dnft.kafka import AsyncConsumer, AsyncProducer, OutgoingMessage, ensure_topics
from dnft.messages import MetadataUpdate
from dnft.stream import (
    Decoded,
    InvalidMessage,
    PoisonPolicy,
    PoisonRatioExceeded,
    StreamProcessor,
    message_decoder,
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


def produce_raw(bootstrap: str, topic: str, values: Sequence[bytes | None]) -> None:
    """``values`` in order on partition 0, acknowledged; None is a tombstone (no value)."""
    producer = KafkaProducer(bootstrap_servers=[bootstrap], acks="all")
    try:
        for v in values:
            producer.send(topic, v, key=b"k", partition=0)
        producer.flush(30)
    finally:
        producer.close()


def update(token_id: int | str, **changes: object) -> bytes:
    """A valid ``dnft.metadata.update.v1`` of ``token_id`` (version 1), with ``changes``."""
    body = {
        "schema": "dnft.metadata.update.v1",
        "chain_id": 31337,
        "contract": "0x" + "ab" * 20,
        "token_id": str(token_id),
        "version": 1,
        "metadata_uri": f"http://127.0.0.1:8000/tokens/{token_id}/versions/1",
        "metadata_sha256": "a" * 64,
        "metadata_cid": "bafkreiabc",
        "image_sha256": "b" * 64,
        "created_at": "2026-11-22T10:00:00+00:00",
        **changes,
    }
    return orjson.dumps(body)


def dead_letters(group: str, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "dnft_stream_dead_letters_total", {"group": group, "reason": reason}
    )
    return value or 0.0


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
                raise ServiceError("database down")  # a dependency: never dead-lettered
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
                        with pytest.raises(ServiceError, match="database down"):
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
        assert dead[0]["reason"] == "invalid"
        assert "not a number" in str(dead[0]["error"])

    async def test_nothing_a_message_carries_stops_the_consumer(
        self, kafka_bootstrap: str, unique_topic: Callable[[str], str]
    ) -> None:
        """A tombstone, out-of-range integers, a bad date and a message its handler fails on
        are each dead-lettered with their reason; every good message is processed, in one
        running consumer, and the offsets are committed past all of them."""
        topic, dlq_topic = unique_topic("in"), unique_topic("dlq")
        group = f"g-{uuid.uuid4().hex[:8]}"
        kafka = quick_kafka(kafka_bootstrap)
        await ensure_topics(kafka, {topic: 1, dlq_topic: 1})
        produce_raw(
            kafka_bootstrap,
            topic,
            [
                update(1),
                None,  # offset 1: a tombstone
                update(2, version=2**31),  # 2: above Postgres' integer
                update("9" * 5000),  # 3: a token id of 5,000 digits
                update(3, created_at="x"),  # 4: not a date-time
                update(666),  # 5: valid, but its handler raises
                update(4),
                update(5),
            ],
        )
        seen: set[int] = set()

        async def process(batch: Sequence[Decoded[MetadataUpdate]]) -> None:
            if any(d.value.token_id == 666 for d in batch):
                raise ValueError("token 666 breaks the handler")
            seen.update(d.value.token_id for d in batch)

        consumer = AsyncConsumer(kafka, group_id=group, topics=[topic])
        await consumer.start()
        dlq = AsyncProducer(kafka)
        await dlq.start()
        before = {r: dead_letters(group, r) for r in ("invalid", "tombstone", "handler_error")}
        processor = StreamProcessor(
            consumer,
            decode=message_decoder(MetadataUpdate),
            process=process,
            dlq=dlq,
            dlq_topic=dlq_topic,
        )
        stopping = asyncio.Event()
        task = asyncio.create_task(processor.run(stopping))
        try:
            await wait_until(lambda: seen == {1, 4, 5}, 30, "the good messages")
            # The consumer goes on: messages produced afterwards are processed too.
            produce_raw(kafka_bootstrap, topic, [update(6), update(7)])
            await wait_until(lambda: seen == {1, 4, 5, 6, 7}, 30, "the later messages")
            stopping.set()
            await asyncio.wait_for(task, 10)
            assert await consumer.committed(topic, 0) == 10  # nothing left behind
        finally:
            stopping.set()
            await consumer.close()
            await dlq.close()
        dead = {int(str(d["offset"])): d for d in dlq_records(kafka_bootstrap, dlq_topic)}
        assert sorted(dead) == [1, 2, 3, 4, 5]
        assert {o: d["reason"] for o, d in dead.items()} == {
            1: "tombstone",
            2: "invalid",
            3: "invalid",
            4: "invalid",
            5: "handler_error",
        }
        assert dead[1]["value"] is None
        assert "version" in str(dead[2]["error"])
        assert "maximum" in str(dead[2]["error"])
        assert "token_id" in str(dead[3]["error"])
        assert "created_at" in str(dead[4]["error"])
        assert "date-time" in str(dead[4]["error"])
        assert str(dead[5]["error"]) == "ValueError: token 666 breaks the handler"
        assert orjson.loads(str(dead[5]["value"]))["token_id"] == "666"
        after = {r: dead_letters(group, r) - n for r, n in before.items()}
        assert after == {"invalid": 3, "tombstone": 1, "handler_error": 1}
        assert (processor.processed, processor.invalid) == (5, 5)

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
