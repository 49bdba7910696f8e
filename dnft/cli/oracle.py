"""``dnft oracle``: read the configured feeds and publish validated observations to Kafka."""

from __future__ import annotations

import argparse
from functools import partial

from dnft.cli.console import Commands, add_command
from dnft.cli.daemons import daemon_settings, serve
from dnft.errors import ConfigError


def register(sub: Commands) -> None:
    add_command(sub, "oracle", __doc__, _main)


def _main(args: argparse.Namespace) -> int:
    from oracle_feeds import run_oracle

    settings = daemon_settings(args)
    if not settings.feeds:
        raise ConfigError("feeds", "no feed is configured")
    return serve("oracle", settings, partial(run_oracle, settings))
