"""What a daemon holds open, owned by one exit stack and closed in reverse order.

Every daemon's ``pipeline.py`` opens its resources through one :class:`DaemonResources`:

.. code-block:: python

    async with DaemonResources(settings, "regenerator") as res:
        pool = await res.pool()
        producer = await res.producer()
        await res.topics([topics.chain_events, topics.render_jobs])
        consumer = await res.consumer(group, [topics.chain_events])
        res.ready()  # dnft_daemon_ready{daemon} is 1 from here until the stack closes
        ...

Whatever was opened is closed when the block ends, normally or by an exception, in the
reverse order of opening (consumers before the producer, the producer before the pool), and
the ready gauge is back to 0 before anything is closed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType

import asyncpg

from dnft import metrics
from dnft.config import Settings
from dnft.db import create_pool
from dnft.kafka import AsyncConsumer, AsyncProducer, ensure_topics
from dnft.kafka.recorded import check_recorded_partitioner


class DaemonResources:
    """One daemon's pool, Kafka clients and other closables, and its ready gauge."""

    def __init__(self, settings: Settings, daemon: str) -> None:
        self.settings = settings
        self.daemon = daemon
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> DaemonResources:
        await self._stack.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        return await self._stack.__aexit__(exc_type, exc, tb)

    async def pool(self) -> asyncpg.Pool:
        """An asyncpg pool sized by ``postgres``; raises ServiceError when Postgres is down."""
        pool = await create_pool(self.settings.postgres)
        self._stack.push_async_callback(pool.close)
        return pool

    async def producer(self) -> AsyncProducer:
        """A started producer named ``<client_id>-<daemon>``; raises ConfigError when the
        deployment's topics were written with another partitioner."""
        kafka = self.settings.kafka
        await check_recorded_partitioner(self.settings.postgres, kafka.partitioner)
        producer = AsyncProducer(kafka, client_id=f"{kafka.client_id}-{self.daemon}")
        await producer.start()
        self._stack.push_async_callback(producer.close)
        return producer

    async def consumer(self, group_id: str, topics: Iterable[str]) -> AsyncConsumer:
        """A started consumer-group member on ``topics`` (manual commits)."""
        consumer = AsyncConsumer(self.settings.kafka, group_id=group_id, topics=list(topics))
        await consumer.start()
        self._stack.push_async_callback(consumer.close)
        return consumer

    async def topics(self, names: Iterable[str] | Mapping[str, int]) -> None:
        """Create missing topics when ``kafka.create_topics`` is on: a list gets
        ``kafka.partitions`` each, a mapping names each topic's partition count."""
        kafka = self.settings.kafka
        if not kafka.create_topics:
            return
        wanted = dict(names) if isinstance(names, Mapping) else dict.fromkeys(names, 0)
        counts = {name: count or kafka.partitions for name, count in wanted.items()}
        await ensure_topics(kafka, counts, kafka.replication_factor)

    def on_close(self, close: Callable[[], Awaitable[object]]) -> None:
        """Run ``close()`` when the stack closes, in reverse order with everything else
        (an RPC client, a leader lock's release)."""
        self._stack.push_async_callback(close)

    def ready(self) -> None:
        """Report the daemon ready (``dnft_daemon_ready``) until the stack closes."""
        gauge = metrics.daemon_ready.labels(self.daemon)
        gauge.set(1)
        self._stack.callback(gauge.set, 0)
