"""``dnft regenerator``: plan token evolutions and render them."""

from __future__ import annotations

import argparse
from functools import partial

from dnft.cli.console import Commands, add_command
from dnft.cli.daemons import daemon_settings, serve
from dnft.collection import load_bound_collections


def register(sub: Commands) -> None:
    parser = add_command(sub, "regenerator", __doc__, _main)
    parser.add_argument(
        "--role",
        choices=("planner", "render", "all"),
        default="all",
        help="planner: events -> states -> render jobs; render: jobs -> versions (default: all)",
    )


def _main(args: argparse.Namespace) -> int:
    from regenerator import run_regenerator

    settings = daemon_settings(args)
    load_bound_collections(settings)  # bad collection files fail before anything starts
    return serve("regenerator", settings, partial(run_regenerator, settings, args.role))
