"""``dnft regenerator``: plan token evolutions and render them."""

from __future__ import annotations

import argparse
import asyncio

from dnft.cli.daemons import daemon_settings, serve
from dnft.collection import load_bound_collections
from dnft.health import HealthServer


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
    from regenerator import run_regenerator

    settings = daemon_settings(args)
    load_bound_collections(settings)  # bad collection files fail before anything starts

    async def main(stopping: asyncio.Event, health: HealthServer) -> None:
        await run_regenerator(settings, args.role, stopping, health)

    return serve("regenerator", settings, main)
