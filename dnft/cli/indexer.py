"""``dnft indexer``: follow the configured networks and publish their events to Kafka."""

from __future__ import annotations

import argparse
import asyncio

import structlog

from dnft import metrics
from dnft.config import Settings, load_settings
from dnft.health import HealthServer
from dnft.kafka import AsyncProducer, ensure_topics
from dnft.logging import configure_logging

log = structlog.get_logger("dnft.indexer")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("indexer", help="run the chain indexer daemon")
    parser.add_argument(
        "--network", action="append", help="network name to index (repeatable; default: all)"
    )
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from dnft.daemon import run_daemon

    settings = load_settings(args.config)
    configure_logging(settings.log_level)
    names = args.network or [n.name for n in settings.networks]
    for name in names:
        settings.network(name)  # unknown names fail here, before anything starts

    async def main(stopping: asyncio.Event, health: HealthServer) -> None:
        await run_indexers(settings, names, stopping, health)

    return asyncio.run(run_daemon("indexer", settings, main))


async def run_indexers(
    settings: Settings, names: list[str], stopping: asyncio.Event, health: HealthServer | None
) -> None:
    """Run one NetworkIndexer per network until ``stopping``; the first failure stops all.

    Except a reorg deeper than the window: that network halts (it must not be papered over,
    and a restart would not help), while the process stays up, not ready, so Prometheus
    keeps scraping ``dnft_indexer_reorg_beyond_window`` and the alert fires; other networks
    go on. An operator replays or re-indexes, then restarts the daemon.
    """
    from indexer.runtime import NetworkIndexer
    from indexer.sync.window import ReorgBeyondWindowError

    producer = AsyncProducer(settings.kafka, client_id=f"{settings.kafka.client_id}-indexer")
    await producer.start()
    try:
        if settings.kafka.create_topics:
            await ensure_topics(
                settings.kafka,
                {settings.kafka.topics.chain_events: settings.kafka.partitions},
                settings.kafka.replication_factor,
            )
        indexers = [NetworkIndexer(settings, name, producer) for name in names]
        halted: dict[str, str] = {}
        if health is not None:

            async def ready() -> str | None:
                bad = [
                    f"{i.network.name}:{halted.get(i.network.name, i.state)}"
                    for i in indexers
                    if i.state == "stopped"
                ]
                return f"stopped: {', '.join(bad)}" if bad else None

            health.add_readiness_check("indexers", ready)
        metrics.daemon_ready.labels("indexer").set(1)
        tasks = {asyncio.create_task(i.run(stopping), name=i.network.name) for i in indexers}
        running = set(tasks)
        try:
            while running:
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_EXCEPTION)
                for task in done:
                    exc = task.exception()
                    if isinstance(exc, ReorgBeyondWindowError):
                        halted[task.get_name()] = "reorg beyond window"
                        log.critical("network halted", network=task.get_name(), error=str(exc))
                    elif exc is not None:
                        raise exc
            if halted:
                metrics.daemon_ready.labels("indexer").set(0)
                await stopping.wait()
        finally:
            stopping.set()
            for task in tasks:
                if not task.done():
                    await asyncio.wait({task}, timeout=20)
    finally:
        metrics.daemon_ready.labels("indexer").set(0)
        await producer.close()
