"""``dnft oracle``: read the configured feeds and publish validated observations to Kafka."""

from __future__ import annotations

import argparse
import asyncio

from dnft import metrics
from dnft.config import Settings, load_settings
from dnft.errors import ConfigError
from dnft.health import HealthServer
from dnft.kafka import AsyncProducer, ensure_topics
from dnft.logging import configure_logging


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "oracle", help="run the oracle feeds daemon (HTTP JSON, Chainlink, median feeds)"
    )
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from dnft.daemon import run_daemon

    settings = load_settings(args.config)
    configure_logging(settings.log_level)
    if not settings.feeds:
        raise ConfigError("feeds", "no feed is configured")

    async def main(stopping: asyncio.Event, health: HealthServer) -> None:
        await run_oracle(settings, stopping, health)

    return asyncio.run(run_daemon("oracle", settings, main))


async def run_oracle(
    settings: Settings, stopping: asyncio.Event, health: HealthServer | None
) -> None:
    """Run every feed until ``stopping`` (as a standby while another replica leads)."""
    from oracle_feeds.runtime import OracleRuntime

    producer = AsyncProducer(settings.kafka, client_id=f"{settings.kafka.client_id}-oracle")
    await producer.start()
    try:
        if settings.kafka.create_topics:
            await ensure_topics(
                settings.kafka,
                {settings.kafka.topics.oracle_observations: settings.kafka.partitions},
                settings.kafka.replication_factor,
            )
        runtime = OracleRuntime(settings, producer)
        if health is not None:

            async def ready() -> str | None:
                return None if runtime.state in ("standby", "running") else runtime.state

            health.add_readiness_check("oracle", ready)
        metrics.daemon_ready.labels("oracle").set(1)
        await runtime.run(stopping)
    finally:
        metrics.daemon_ready.labels("oracle").set(0)
        await producer.close()
