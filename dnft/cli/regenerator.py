"""``dnft regenerator``: plan token evolutions and render them."""

from __future__ import annotations

import argparse
import asyncio

from dnft.config import load_settings
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
    from regenerator import run_regenerator_daemon

    settings = load_settings(args.config)
    configure_logging(settings.log_level)
    return asyncio.run(run_regenerator_daemon(settings, args.role))
