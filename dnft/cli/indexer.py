"""``dnft indexer``: follow the configured networks and publish their events to Kafka."""

from __future__ import annotations

import argparse
from functools import partial

from dnft.cli.console import Commands, add_command
from dnft.cli.daemons import daemon_settings, serve


def register(sub: Commands) -> None:
    parser = add_command(sub, "indexer", __doc__, _main)
    parser.add_argument(
        "--network", action="append", help="network name to index (repeatable; default: all)"
    )


def _main(args: argparse.Namespace) -> int:
    from indexer import run_indexer

    settings = daemon_settings(args)
    names = args.network or [n.name for n in settings.networks]
    for name in names:
        settings.network(name)  # unknown names fail here, before anything starts
    return serve("indexer", settings, partial(run_indexer, settings, names))
