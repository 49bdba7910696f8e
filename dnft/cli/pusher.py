"""``dnft pusher``: announce new metadata versions on chain (ERC-4906 or setTokenURI)."""

from __future__ import annotations

import argparse
import asyncio

from dnft.config import load_settings
from dnft.health import HealthServer
from dnft.logging import configure_logging


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "pusher", help="run the pusher (metadata updates -> ERC-4906 / setTokenURI transactions)"
    )
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from dnft.daemon import run_daemon
    from publisher.pusher import prepare_signer, run_pusher

    settings = load_settings(args.config)
    configure_logging(settings.log_level)
    signer = prepare_signer(settings)  # nothing to push, a bad key: fail before anything starts

    async def main(stopping: asyncio.Event, health: HealthServer) -> None:
        await run_pusher(settings, signer, stopping, health)

    return asyncio.run(run_daemon("pusher", settings, main))
