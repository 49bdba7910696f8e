"""A consumer-group member with manual commits, off the event loop (one thread per consumer).

Nothing auto-commits: the caller commits explicit offsets after it made the messages' side
effects durable (see :mod:`dnft.stream`)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kafka import KafkaConsumer
from kafka.errors import KafkaError as _KafkaLibError
from kafka.structs import OffsetAndMetadata, TopicPartition

from dnft import metrics
from dnft.config import KafkaSettings
from dnft.errors import KafkaError
from dnft.kafka.records import ConsumedMessage
from dnft.kafka.security import client_security_kwargs, explain_connect_failure


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
            **client_security_kwargs(self._settings),
        }
        try:
            self._consumer = await self._run(KafkaConsumer, *self._topics, **config)
        except _KafkaLibError as exc:
            why = await self._run(explain_connect_failure, self._settings)
            raise KafkaError(
                f"cannot start consumer group {self._group_id}: {exc!r} {why}".rstrip()
            ) from exc

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
