"""``dnft indexer``: follow the configured networks and publish their events to Kafka."""

from __future__ import annotations

import argparse
import asyncio

from dnft.config import load_settings
from dnft.health import HealthServer
from dnft.logging import configure_logging


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("indexer", help="run the chain indexer daemon")
    parser.add_argument(
        "--network", action="append", help="network name to index (repeatable; default: all)"
    )
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from dnft.daemon import run_daemon
    from indexer import run_indexer

    settings = load_settings(args.config)
    configure_logging(settings.log_level)
    names = args.network or [n.name for n in settings.networks]
    for name in names:
        settings.network(name)  # unknown names fail here, before anything starts

    async def main(stopping: asyncio.Event, health: HealthServer) -> None:
        await run_indexer(settings, names, stopping, health)

    return asyncio.run(run_daemon("indexer", settings, main))
