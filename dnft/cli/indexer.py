"""``dnft indexer``: follow the configured networks and publish their events to Kafka."""

from __future__ import annotations

import argparse
import asyncio

from dnft.cli.daemons import daemon_settings, serve
from dnft.health import HealthServer


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("indexer", help="run the chain indexer daemon")
    parser.add_argument(
        "--network", action="append", help="network name to index (repeatable; default: all)"
    )
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from indexer import run_indexer

    settings = daemon_settings(args)
    names = args.network or [n.name for n in settings.networks]
    for name in names:
        settings.network(name)  # unknown names fail here, before anything starts

    async def main(stopping: asyncio.Event, health: HealthServer) -> None:
        await run_indexer(settings, names, stopping, health)

    return serve("indexer", settings, main)
