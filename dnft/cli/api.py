"""``dnft api``: serve the read-only metadata API and the holders' gallery."""

from __future__ import annotations

import argparse
from functools import partial

from dnft.cli.console import Commands, add_command
from dnft.cli.daemons import daemon_settings, serve
from dnft.errors import ConfigError


def register(sub: Commands) -> None:
    parser = add_command(sub, "api", __doc__, _main)
    parser.add_argument(
        "--port", type=int, default=None, help="listen on this port (default: api.port)"
    )


def _main(args: argparse.Namespace) -> int:
    from dnft.collection import load_bound_collections
    from publisher.api import default_collection, run_api

    settings = daemon_settings(args)
    if args.port is not None:
        if not 0 <= args.port <= 65535:
            raise ConfigError("--port", f"must be from 0 to 65535, got {args.port}")
        api = settings.api.model_copy(update={"port": args.port})
        settings = settings.model_copy(update={"api": api})
    # Bad collection files or api.collection fail before anything starts.
    default_collection(settings, load_bound_collections(settings))
    return serve("api", settings, partial(run_api, settings))
