"""``dnft verify TOKEN [VERSION]``: re-render a version from its provenance and compare."""

from __future__ import annotations

import argparse
import asyncio

from dnft.cli.console import Commands, add_command
from dnft.config import load_settings
from dnft.errors import ConfigError


def register(sub: Commands) -> None:
    parser = add_command(sub, "verify", __doc__, _main)
    parser.add_argument("token", type=int)
    parser.add_argument("version", type=int, nargs="?", help="default: the latest")
    parser.add_argument("--collection", help="collection name (default: the only one)")


def _main(args: argparse.Namespace) -> int:
    from dnft.collection import load_bound_collections
    from regenerator import verify_stored

    settings = load_settings(args.config)
    collections = {c.collection.name: c for c in load_bound_collections(settings)}
    if args.collection is None and len(collections) > 1:
        raise ConfigError("--collection", f"pick one of {sorted(collections)}")
    name = args.collection or next(iter(collections))
    if name not in collections:
        raise ConfigError("--collection", f"unknown collection {name!r}")
    result = asyncio.run(verify_stored(settings, collections[name], args.token, args.version))
    verdict = "OK" if result.matches else "MISMATCH"
    print(
        f"{verdict}: {name} token {result.token_id} version {result.version} "
        f"({result.renderer}): {result.detail}"
    )
    return 0 if result.matches else 1
