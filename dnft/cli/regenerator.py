"""``dnft regenerator``: plan token evolutions and render them."""

from __future__ import annotations

import argparse
import asyncio

from dnft.config import load_settings
from dnft.health import HealthServer
from dnft.logging import configure_logging


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("regenerator", help="run the regenerator (planner and/or renderers)")
    parser.add_argument(
        "--role",
        choices=("planner", "render", "all"),
        default="all",
        help="planner: events -> states -> render jobs; render: jobs -> versions (default: all)",
    )
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from dnft.collection.bound import load_bound_collections
    from dnft.daemon import run_daemon
    from regenerator.pipeline import run_regenerator

    settings = load_settings(args.config)
    configure_logging(settings.log_level)
    load_bound_collections(settings)  # bad collection files fail before anything starts

    async def main(stopping: asyncio.Event, health: HealthServer) -> None:
        await run_regenerator(settings, args.role, stopping, health)

    return asyncio.run(run_daemon("regenerator", settings, main))
