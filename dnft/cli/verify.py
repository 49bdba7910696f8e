"""``dnft verify TOKEN [VERSION]``: re-render a version from its provenance and compare."""

from __future__ import annotations

import argparse
import asyncio

from dnft.config import load_settings
from dnft.db import create_pool
from dnft.errors import ConfigError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("verify", help="re-render a token version and compare its image")
    parser.add_argument("token", type=int)
    parser.add_argument("version", type=int, nargs="?", help="default: the latest")
    parser.add_argument("--collection", help="collection name (default: the only one)")
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from dnft.collection.bound import load_bound_collections
    from dnft.storage.blobs import blob_store
    from regenerator.renderers.factory import renderer_for
    from regenerator.verify import verify_version

    settings = load_settings(args.config)
    collections = {c.collection.name: c for c in load_bound_collections(settings)}
    if args.collection is None and len(collections) > 1:
        raise ConfigError("--collection", f"pick one of {sorted(collections)}")
    name = args.collection or next(iter(collections))
    if name not in collections:
        raise ConfigError("--collection", f"unknown collection {name!r}")
    bound = collections[name]

    async def run() -> int:
        pool = await create_pool(settings.postgres)
        try:
            result = await verify_version(
                pool,
                blob_store(settings),
                bound,
                renderer_for(bound.collection),
                args.token,
                args.version,
            )
        finally:
            await pool.close()
        verdict = "OK" if result.matches else "MISMATCH"
        print(
            f"{verdict}: {name} token {result.token_id} version {result.version} "
            f"({result.renderer}): {result.detail}"
        )
        return 0 if result.matches else 1

    return asyncio.run(run())
