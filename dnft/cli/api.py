"""``dnft api``: serve the read-only metadata API and the holders' gallery."""

from __future__ import annotations

import argparse
import asyncio

from dnft.cli.daemons import daemon_settings, serve
from dnft.errors import ConfigError
from dnft.health import HealthServer


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("api", help="serve token metadata, images and the gallery (HTTP)")
    parser.add_argument(
        "--port", type=int, default=None, help="listen on this port (default: api.port)"
    )
    parser.set_defaults(func=_main)


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

    async def main(stopping: asyncio.Event, health: HealthServer) -> None:
        await run_api(settings, stopping, health)

    return serve("api", settings, main)
