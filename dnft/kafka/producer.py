"""The asynchronous producer: batches handed to kafka-python's send thread, acknowledgements
awaited without blocking the event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from kafka import KafkaProducer
from kafka.errors import KafkaError as _KafkaLibError

from dnft import metrics
from dnft.config import KafkaSettings
from dnft.errors import KafkaError
from dnft.kafka.partition import Partitioner, partitioner
from dnft.kafka.records import Delivery, KeyedRecord, OutgoingMessage
from dnft.kafka.security import client_security_kwargs, explain_connect_failure

T = TypeVar("T")


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
        # Every keyed record is placed by dnft with the configured partitioner, never by
        # kafka-python's (its murmur2 is pure Python).
        self._partition = partitioner(settings.partitioner)
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
            **client_security_kwargs(self._settings),
        }
        try:
            self._producer = await asyncio.to_thread(KafkaProducer, **config)
        except _KafkaLibError as exc:
            why = await asyncio.to_thread(explain_connect_failure, self._settings)
            servers = self._settings.bootstrap_servers
            raise KafkaError(
                f"cannot connect producer to {servers}: {exc!r} {why}".rstrip()
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
            _enqueue(producer, messages, batch, self._partition)

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
            send, track, partition_for = producer.send, batch._track, self._partition
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


def _enqueue(
    producer: KafkaProducer,
    messages: Sequence[OutgoingMessage],
    batch: PendingBatch,
    partition_for: Partitioner,
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
