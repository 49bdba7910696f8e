"""``dnft oracle`` assembled: every configured feed read, checked and published to Kafka.

The pipeline: one producer and the observations topic (owned by
:class:`~dnft.resources.DaemonResources`, closed when the daemon stops) -> the feed set under
one leader lock (:class:`~oracle_feeds.runtime.OracleRuntime`: a standby waits; the leader runs
one :class:`~oracle_feeds.runtime.FeedRunner` per feed: read -> validate -> decide -> record
the intent in Postgres -> publish keyed by feed id -> commit the round).
"""

from __future__ import annotations

import asyncio

from dnft.config import Settings
from dnft.health import HealthServer
from dnft.resources import DaemonResources
from oracle_feeds.runtime import OracleRuntime


async def run_oracle(
    settings: Settings, stopping: asyncio.Event, health: HealthServer | None
) -> None:
    """Run every feed until ``stopping`` (as a standby while another replica leads);
    ``health`` reports the oracle ready while it stands by or runs.

    Raises KafkaError when the producer cannot start, ServiceError when Postgres fails or the
    leader lock is lost.
    """
    async with DaemonResources(settings, "oracle") as res:
        producer = await res.producer()
        await res.topics([settings.kafka.topics.oracle_observations])
        runtime = OracleRuntime(settings, producer)
        if health is not None:

            async def ready() -> str | None:
                return None if runtime.state in ("standby", "running") else runtime.state

            health.add_readiness_check("oracle", ready)
        res.ready()
        await runtime.run(stopping)
