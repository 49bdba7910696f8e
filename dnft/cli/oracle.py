"""``dnft oracle``: read the configured feeds and publish validated observations to Kafka."""

from __future__ import annotations

import argparse
import asyncio

from dnft.config import load_settings
from dnft.errors import ConfigError
from dnft.health import HealthServer
from dnft.logging import configure_logging


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "oracle", help="run the oracle feeds daemon (HTTP JSON, Chainlink, median feeds)"
    )
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from dnft.daemon import run_daemon
    from oracle_feeds import run_oracle

    settings = load_settings(args.config)
    configure_logging(settings.log_level)
    if not settings.feeds:
        raise ConfigError("feeds", "no feed is configured")

    async def main(stopping: asyncio.Event, health: HealthServer) -> None:
        await run_oracle(settings, stopping, health)

    return asyncio.run(run_daemon("oracle", settings, main))
