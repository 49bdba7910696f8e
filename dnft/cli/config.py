"""``dnft config check``: load and validate the settings, naming the failing key."""

from __future__ import annotations

import argparse

from dnft.config import load_settings
from dnft.errors import ConfigError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config = sub.add_parser("config", help="inspect the configuration")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = config_sub.add_parser("check", help="validate dnft.yaml plus DNFT_* overrides")
    check.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
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
