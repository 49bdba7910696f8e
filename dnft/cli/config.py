"""``dnft config check``: load and validate the settings, naming the failing key; then read
each contract's ABI (its events, and where each event's token id comes from) and load each
collection file bound to its contract, check the pusher's calls against their ABIs, and
check that each Kafka TLS/SASL file exists and is readable, as the daemons do at start."""

from __future__ import annotations

import argparse

from dnft.collection import load_bound_collections
from dnft.config import load_settings
from dnft.errors import ConfigError
from dnft.kafka.security import check_files
from indexer.encode import load_contracts
from publisher.pusher import push_targets


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config = sub.add_parser("config", help="inspect the configuration")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = config_sub.add_parser("check", help="validate dnft.yaml plus DNFT_* overrides")
    check.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
        # Not at load (the api and migrations need no Kafka Secret): every Kafka client does.
        check_files(settings.kafka.security)
        for network in settings.networks:
            load_contracts(settings, network.name)
        if settings.collections:
            load_bound_collections(settings)
        if settings.pusher.announcing:  # a mode: call function must be in its contract's ABI
            push_targets(settings)
    except ConfigError as exc:
        key = exc.key or "(file)"
        print(f"config error at {key}: {exc.reason}")
        return 1
    print(
        f"config ok: {len(settings.networks)} network(s), {len(settings.contracts)} contract(s), "
        f"{len(settings.feeds)} feed(s), {len(settings.collections)} collection(s); "
        f"kafka {','.join(settings.kafka.bootstrap_servers)}"
    )
    return 0
