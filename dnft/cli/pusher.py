"""``dnft pusher``: announce new metadata versions on chain (ERC-4906 or setTokenURI)."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING

from dnft.config import Settings, load_settings
from dnft.hardening import protect_secrets
from dnft.health import HealthServer
from dnft.logging import configure_logging

if TYPE_CHECKING:
    from publisher.pusher.signer import Signer


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "pusher", help="run the pusher (metadata updates -> ERC-4906 / setTokenURI transactions)"
    )
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from dnft.daemon import run_daemon
    from publisher.pusher.runtime import load_signer, push_targets

    settings = load_settings(args.config)
    configure_logging(settings.log_level)
    push_targets(settings)  # nothing to push, a bad key: fail before anything starts
    protect_secrets()  # no core dump or ptrace can read the key
    signer = load_signer(settings)

    async def main(stopping: asyncio.Event, health: HealthServer) -> None:
        await run_pusher(settings, signer, stopping, health)

    return asyncio.run(run_daemon("pusher", settings, main))


async def run_pusher(
    settings: Settings, signer: Signer, stopping: asyncio.Event, health: HealthServer | None
) -> None:
    """Lead (or wait as standby) and push until ``stopping``."""
    from publisher.pusher.runtime import PusherRuntime

    runtime = PusherRuntime(settings, signer)

    async def ready() -> str | None:
        return None if runtime.state in ("standby", "running") else runtime.state

    if health is not None:
        health.add_readiness_check("pusher", ready)
    await runtime.run(stopping)
