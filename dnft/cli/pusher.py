"""``dnft pusher``: announce new metadata versions on chain (ERC-4906 or setTokenURI)."""

from __future__ import annotations

import argparse
import asyncio

from dnft.cli.daemons import daemon_settings, serve
from dnft.health import HealthServer


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "pusher", help="run the pusher (metadata updates -> ERC-4906 / setTokenURI transactions)"
    )
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from publisher.pusher import prepare_signer, run_pusher

    settings = daemon_settings(args)
    signer = prepare_signer(settings)  # nothing to push, a bad key: fail before anything starts

    async def main(stopping: asyncio.Event, health: HealthServer) -> None:
        await run_pusher(settings, signer, stopping, health)

    return serve("pusher", settings, main)
