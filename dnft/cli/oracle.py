"""``dnft oracle``: read the configured feeds and publish validated observations to Kafka."""

from __future__ import annotations

import argparse
import asyncio

from dnft.cli.daemons import daemon_settings, serve
from dnft.errors import ConfigError
from dnft.health import HealthServer


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "oracle", help="run the oracle feeds daemon (HTTP JSON, Chainlink, median feeds)"
    )
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from oracle_feeds import run_oracle

    settings = daemon_settings(args)
    if not settings.feeds:
        raise ConfigError("feeds", "no feed is configured")

    async def main(stopping: asyncio.Event, health: HealthServer) -> None:
        await run_oracle(settings, stopping, health)

    return serve("oracle", settings, main)
