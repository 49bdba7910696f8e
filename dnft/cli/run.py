"""``dnft run --all``: every daemon in one process, for small installs and the demo.

The same runtimes as the single daemons, sharing one health server (its /readyz reports each
part) and one shutdown deadline. A part fails -> the whole process stops (and is restarted by
whatever supervises it), as separate daemons would. Parts with nothing configured are skipped:
the oracle without ``feeds``, the pusher without ``pusher.collections`` to announce.

Several networks run side by side: the indexer follows every network with contracts (each
with its own ``confirmations``), the pusher pushes to every network with announced
collections, each signed by its own key (``pusher.signers``, else ``pusher.signer``).
"""

from __future__ import annotations

import argparse
from functools import partial

from dnft.cli.console import Commands, add_command
from dnft.cli.daemons import daemon_settings, serve
from dnft.config import Settings
from dnft.daemon import DaemonMain, together
from dnft.errors import ConfigError

PARTS = ("indexer", "oracle", "regenerator", "api", "pusher")


def register(sub: Commands) -> None:
    parser = add_command(sub, "run", __doc__, _main)
    parser.add_argument("--all", action="store_true", required=True, help="every daemon")
    parser.add_argument(
        "--without", action="append", default=[], choices=PARTS, help="skip one (repeatable)"
    )


def plan_parts(settings: Settings, without: list[str]) -> dict[str, DaemonMain]:
    """The parts to run, each validated now: bad config fails before anything starts."""
    from dnft.collection import load_bound_collections
    from indexer import run_indexer
    from oracle_feeds import run_oracle
    from publisher.api import default_collection, run_api
    from publisher.pusher import prepare_signers, run_pusher
    from regenerator import run_regenerator

    parts: dict[str, DaemonMain] = {}
    skip = set(without)
    if "indexer" not in skip:
        networks = [n.name for n in settings.networks if settings.contracts_on(n.name)]
        if not networks:
            raise ConfigError("contracts", "no contract to index (or pass --without indexer)")
        parts["indexer"] = partial(run_indexer, settings, networks)
    if "oracle" not in skip and settings.feeds:
        parts["oracle"] = partial(run_oracle, settings)
    collections = load_bound_collections(settings)
    if "regenerator" not in skip:
        parts["regenerator"] = partial(run_regenerator, settings, "all")
    if "api" not in skip:
        default_collection(settings, collections)
        parts["api"] = partial(run_api, settings)
    if "pusher" not in skip and settings.pusher.announcing:
        # Each network's own key (pusher.signers); a bad one fails before anything starts.
        signers = prepare_signers(settings)
        parts["pusher"] = partial(run_pusher, settings, signers)
    return parts


def _main(args: argparse.Namespace) -> int:
    settings = daemon_settings(args)
    return serve("all", settings, together(plan_parts(settings, args.without)))
