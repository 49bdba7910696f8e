"""``dnft pusher``: announce new metadata versions on chain (ERC-4906 or setTokenURI)."""

from __future__ import annotations

import argparse
from functools import partial

from dnft.cli.console import Commands, add_command
from dnft.cli.daemons import daemon_settings, serve


def register(sub: Commands) -> None:
    add_command(sub, "pusher", __doc__, _main)


def _main(args: argparse.Namespace) -> int:
    from publisher.pusher import prepare_signer, run_pusher

    settings = daemon_settings(args)
    signer = prepare_signer(settings)  # nothing to push, a bad key: fail before anything starts
    return serve("pusher", settings, partial(run_pusher, settings, signer))
