"""``dnft pusher``: announce new metadata versions on chain (ERC-4906 or setTokenURI)."""

from __future__ import annotations

import argparse
from functools import partial

from dnft.cli.console import Commands, add_command
from dnft.cli.daemons import daemon_settings, serve


def register(sub: Commands) -> None:
    parser = add_command(sub, "pusher", __doc__, _main)
    parser.add_argument(
        "--network",
        action="append",
        help="network name to push to (repeatable; default: every network with announced"
        " collections). One pusher per chain: give each its own pusher.leader_scope",
    )


def _main(args: argparse.Namespace) -> int:
    from publisher.pusher import prepare_signers, run_pusher

    settings = daemon_settings(args)
    # Nothing to push, an unknown network, a bad key: fail before anything starts.
    signers = prepare_signers(settings, args.network)
    return serve("pusher", settings, partial(run_pusher, settings, signers))
