"""Kafka access around kafka-python that never blocks the event loop.

kafka-python has no asyncio API, so every blocking call runs in a thread. A consumer is not
thread-safe: each :class:`AsyncConsumer` owns one worker thread and runs all of its calls
there, in order. The producer is thread-safe; a batch is sent and awaited in one thread hop.

Nothing here auto-commits: consumers commit explicit offsets, after the caller made the
message's side effects durable. The code speaks only the Kafka protocol (no broker-specific
calls), so it runs the same against tansu in tests and Apache Kafka in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError as _KafkaLibError
from kafka.errors import TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata, TopicPartition

from dnft import metrics
from dnft.errors import KafkaError
from dnft.settings import KafkaSettings

T = TypeVar("T")


# (key, value, header value) of a record for ``AsyncProducer.enqueue_records``; key and value
# may be slices of a larger buffer.
KeyedRecord = tuple[bytes | memoryview, bytes | memoryview, bytes]


class OutgoingMessage(NamedTuple):
    # A NamedTuple, not a frozen dataclass: the indexer builds hundreds of thousands per
    # second, and a frozen dataclass costs several times more to construct.
    topic: str
    value: bytes
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where the broker stored an acknowledged message."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class ConsumedMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int

    @property
    def next_offset(self) -> int:
        """The offset to commit once this message's side effects are durable."""
        return self.offset + 1


class PendingBatch:
    """Acknowledgements of one enqueued batch; resolved from kafka-python's I/O thread.

    kafka-python resolves the records of one record batch from one "produce future": the
    batch waits on those (a few per chunk of thousands of records) instead of a callback per
    record, then checks every record's own outcome once (a record can fail alone, or move to
    another produce future when a batch is split).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._future: asyncio.Future[None] = loop.create_future()
        self._counts: dict[str, int] = {}  # messages per topic
        self._sent: list[Any] = []  # kafka-python's per-message futures
        self._produce: dict[int, Any] = {}  # their record batches' produce futures, by id
        self._remaining = 0
        self._lock = threading.Lock()
        self._started = time.perf_counter()

    def _begin(self, counts: dict[str, int]) -> None:
        """Called on the send thread before the first send of this batch."""
        self._counts = counts

    def _track(self, future: Any) -> None:
        """Called on the send thread for each message handed to the producer."""
        self._sent.append(future)
        # kafka-python 3's record futures hang off their record batch's produce future.
        produce = getattr(future, "_produce_future", future)
        self._produce[id(produce)] = produce

    def _handed_over(self) -> None:
        """Called on the send thread once every message was handed to the producer."""
        self._expect(list(self._produce.values()))

    def _expect(self, futures: Sequence[Any]) -> None:
        """Wait on ``futures`` (set once every message was handed to the producer)."""
        with self._lock:
            self._remaining = len(futures)
        if not futures:
            self._check_records()
        for future in futures:
            future.add_both(self._on_done)

    def __len__(self) -> int:
        return sum(self._counts.values())

    def done(self) -> bool:
        return self._future.done()

    def _on_done(self, outcome: Any) -> None:
        if isinstance(outcome, BaseException):
            self._loop.call_soon_threadsafe(self._fail, outcome)
            return
        with self._lock:
            self._remaining -= 1
            done = self._remaining == 0
        if done:
            self._check_records()

    def _check_records(self) -> None:
        for record in self._sent:
            if record.is_done and record.failed():
                self._loop.call_soon_threadsafe(self._fail, record.exception)
                return
        waiting = [record for record in self._sent if not record.is_done]
        if waiting:  # rebound to a split batch's produce future: wait on each of them
            self._expect(waiting)
            return
        self._loop.call_soon_threadsafe(self._resolve)

    def _resolve(self) -> None:
        if self._future.done():
            return
        elapsed = time.perf_counter() - self._started
        for topic, count in self._counts.items():
            metrics.kafka_produce_seconds.labels(topic).observe(elapsed)
            metrics.kafka_messages_produced_total.labels(topic).inc(count)
        self._future.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if not self._future.done():
            self._future.set_exception(KafkaError(f"produce failed: {exc}"))

    async def acked(self) -> None:
        """Wait until the broker acknowledged every message; raises KafkaError otherwise."""
        await asyncio.shield(self._future)

    def deliveries(self) -> list[Delivery]:
        """Where each message landed, in the batch's order (after ``acked``)."""
        return [Delivery(f.value.topic, f.value.partition, f.value.offset) for f in self._sent]


class AsyncProducer:
    """Idempotent producer; a batch counts as sent only once the broker acknowledged all of it.

    Sends run on one dedicated thread, so batches enter the producer in the order they were
    enqueued and per-key order holds across batches; waiting for acknowledgements blocks
    nothing (callbacks resolve an asyncio future).
    """

    def __init__(self, settings: KafkaSettings, *, client_id: str | None = None) -> None:
        self._settings = settings
        self._client_id = client_id or settings.client_id
        self._producer: KafkaProducer | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-producer")

    async def start(self) -> None:
        p = self._settings.producer
        acks: int | str = "all" if p.acks == "all" else int(p.acks)
        config: dict[str, Any] = {
            "bootstrap_servers": list(self._settings.bootstrap_servers),
            "client_id": self._client_id,
            "acks": acks,
            "enable_idempotence": p.enable_idempotence,
            "linger_ms": p.linger_ms,
            "batch_size": p.batch_size,
            "request_timeout_ms": p.request_timeout_ms,
            "compression_type": None if p.compression == "none" else p.compression,
        }
        try:
            self._producer = await asyncio.to_thread(KafkaProducer, **config)
        except _KafkaLibError as exc:
            raise KafkaError(
                f"cannot connect producer to {self._settings.bootstrap_servers}: {exc}"
            ) from exc

    async def enqueue(self, messages: Sequence[OutgoingMessage]) -> PendingBatch:
        """Hand a batch to the producer (in order) without waiting for acknowledgements."""
        return await self.enqueue_built(lambda: messages)

    async def enqueue_built(self, build: Callable[[], Sequence[OutgoingMessage]]) -> PendingBatch:
        """Run ``build`` on the send thread, then enqueue the batch it returns.

        CPU-heavy batch building (decoding, serialising) then runs off the event loop and on
        the same thread as the sends, instead of a third thread contending for the GIL.
        Exceptions from ``build`` propagate to the caller; nothing was sent then.
        """
        producer = self._require()
        loop = asyncio.get_running_loop()
        batch = PendingBatch(loop)

        def work() -> None:
            messages = build()
            batch._begin(_count_by_topic(messages))
            _enqueue(producer, messages, batch)

        await loop.run_in_executor(self._executor, work)
        return batch

    async def enqueue_records(
        self,
        topic: str,
        header: str,
        build: Callable[[], Sequence[KeyedRecord]],
    ) -> PendingBatch:
        """The hot path's ``enqueue_built``: ``build`` returns (key, value, header value)
        triples for ``topic``, each sent with the one header ``header`` (the event id).

        No intermediate message objects: at tens of thousands of records per second the
        producer's thread is the indexer's bottleneck (it holds the GIL).
        """
        producer = self._require()
        loop = asyncio.get_running_loop()
        batch = PendingBatch(loop)

        def work() -> None:
            records = build()
            batch._begin({topic: len(records)})
            count = len(producer.partitions_for(topic))
            send, track = producer.send, batch._track
            try:
                for key, value, header_value in records:
                    track(
                        send(
                            topic,
                            value=value,
                            key=key,
                            headers=[(header, header_value)],
                            partition=partition_for(key, count),
                        )
                    )
            except _KafkaLibError as exc:
                batch._on_done(exc)
                return
            batch._handed_over()

        await loop.run_in_executor(self._executor, work)
        return batch

    async def send_many(self, messages: Sequence[OutgoingMessage]) -> list[Delivery]:
        """Send a batch and wait for every acknowledgement; raises KafkaError if any fails."""
        batch = await self.enqueue(messages)
        await batch.acked()
        return batch.deliveries()

    async def send(self, message: OutgoingMessage) -> Delivery:
        return (await self.send_many([message]))[0]

    async def close(self, timeout_s: float = 10.0) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, lambda: producer.close(timeout=timeout_s))
        self._executor.shutdown(wait=False)

    def _require(self) -> KafkaProducer:
        if self._producer is None:
            raise KafkaError("producer is not started")
        return self._producer


def partition_for(key: bytes | memoryview, partitions: int) -> int:
    """The partition of a keyed message: CRC-32 of the key modulo the partition count.

    Every dnft producer uses this, so a key always maps to one partition (per-token order).
    It is not Java's murmur2 default: kafka-python computes murmur2 in pure Python, which cost
    a quarter of the indexer's CPU; zlib's CRC-32 is C. Non-dnft producers writing the same
    keys to dnft topics would need the same function.
    """
    return zlib.crc32(key) % partitions


def _enqueue(
    producer: KafkaProducer, messages: Sequence[OutgoingMessage], batch: PendingBatch
) -> None:
    counts: dict[str, int] = {}
    try:
        for m in messages:
            partition = None
            if m.key is not None:
                count = counts.get(m.topic)
                if count is None:
                    count = counts[m.topic] = len(producer.partitions_for(m.topic))
                partition = partition_for(m.key, count)
            batch._track(
                producer.send(
                    m.topic, value=m.value, key=m.key, headers=list(m.headers), partition=partition
                )
            )
    except _KafkaLibError as exc:
        batch._on_done(exc)
        return
    batch._handed_over()


def _count_by_topic(messages: Iterable[OutgoingMessage]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for m in messages:
        counts[m.topic] = counts.get(m.topic, 0) + 1
    return counts


class AsyncConsumer:
    """A consumer-group member with manual commits; every call runs on its own thread."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        group_id: str,
        topics: Sequence[str],
        auto_offset_reset: str = "earliest",
        client_id: str | None = None,
    ) -> None:
        self._settings = settings
        self._group_id = group_id
        self._topics = list(topics)
        self._auto_offset_reset = auto_offset_reset
        self._client_id = client_id or settings.client_id
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"kafka-{group_id}")
        self._consumer: KafkaConsumer | None = None

    @property
    def group_id(self) -> str:
        return self._group_id

    async def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def start(self) -> None:
        c = self._settings.consumer
        config: dict[str, Any] = {
            "bootstrap_servers": list(self._settings.bootstrap_servers),
            "client_id": self._client_id,
            "group_id": self._group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": self._auto_offset_reset,
            "session_timeout_ms": c.session_timeout_ms,
            "heartbeat_interval_ms": c.heartbeat_interval_ms,
            "max_poll_interval_ms": c.max_poll_interval_ms,
            "max_poll_records": c.max_poll_records,
        }
        try:
            self._consumer = await self._run(KafkaConsumer, *self._topics, **config)
        except _KafkaLibError as exc:
            raise KafkaError(f"cannot start consumer group {self._group_id}: {exc}") from exc

    async def poll(
        self, timeout_ms: int = 500, max_records: int | None = None
    ) -> list[ConsumedMessage]:
        """Fetch the next records (may be empty); joins the group on first call."""
        consumer = self._require()
        batches = await self._run(consumer.poll, timeout_ms=timeout_ms, max_records=max_records)
        out: list[ConsumedMessage] = []
        for tp, records in batches.items():
            for r in records:
                out.append(
                    ConsumedMessage(
                        topic=tp.topic,
                        partition=tp.partition,
                        offset=r.offset,
                        key=r.key,
                        value=r.value,
                        headers=tuple(r.headers or ()),
                        timestamp_ms=r.timestamp,
                    )
                )
            metrics.kafka_messages_consumed_total.labels(self._group_id, tp.topic).inc(len(records))
        out.sort(key=lambda m: (m.topic, m.partition, m.offset))
        return out

    async def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        """Commit ``{(topic, partition): next_offset}`` synchronously; raises KafkaError."""
        if not offsets:
            return
        consumer = self._require()
        payload = {
            TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
            for (topic, partition), offset in offsets.items()
        }
        try:
            await self._run(consumer.commit, payload)
        except _KafkaLibError as exc:
            raise KafkaError(f"commit failed for group {self._group_id}: {exc}") from exc
        metrics.kafka_commits_total.labels(self._group_id).inc()

    async def committed(self, topic: str, partition: int) -> int | None:
        consumer = self._require()
        result: int | None = await self._run(consumer.committed, TopicPartition(topic, partition))
        return result

    async def update_lag(self) -> dict[tuple[str, int], int]:
        """Measure lag for the assigned partitions and export it as a gauge.

        Uses ListOffsets: exact on Apache Kafka; tansu under-reports partition ends, so on it
        the lag reads low (clamped at 0).
        """
        consumer = self._require()

        def measure() -> dict[tuple[str, int], int]:
            tps = list(consumer.assignment())
            if not tps:
                return {}
            ends = consumer.end_offsets(tps)
            return {
                (tp.topic, tp.partition): max(0, ends[tp] - consumer.position(tp)) for tp in tps
            }

        lags: dict[tuple[str, int], int] = await self._run(measure)
        for (topic, partition), lag in lags.items():
            metrics.kafka_consumer_lag_messages.labels(self._group_id, topic, str(partition)).set(
                lag
            )
        return lags

    async def close(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await self._run(consumer.close, autocommit=False)
        self._executor.shutdown(wait=False)

    def _require(self) -> KafkaConsumer:
        if self._consumer is None:
            raise KafkaError("consumer is not started")
        return self._consumer


async def ensure_topics(
    settings: KafkaSettings, topics: Mapping[str, int], replication_factor: int = 1
) -> None:
    """Create missing topics with the given partition counts; existing ones are left alone."""

    def create() -> None:
        admin = KafkaAdminClient(
            bootstrap_servers=list(settings.bootstrap_servers),
            client_id=f"{settings.client_id}-admin",
        )
        try:
            existing = set(admin.list_topics())
            new = [
                NewTopic(name, partitions, replication_factor)
                for name, partitions in topics.items()
                if name not in existing
            ]
            # A concurrent creator may win the race: that is fine.
            if new:
                with contextlib.suppress(TopicAlreadyExistsError):
                    admin.create_topics(new)
        finally:
            admin.close()

    try:
        await asyncio.to_thread(create)
    except _KafkaLibError as exc:
        raise KafkaError(f"cannot create topics {sorted(topics)}: {exc}") from exc
