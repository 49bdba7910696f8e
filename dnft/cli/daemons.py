"""What every daemon command does around its part: settings loaded and logging configured,
then the part run as a daemon (signals, the health server, the shutdown deadline)."""

from __future__ import annotations

import argparse
import asyncio

from dnft.config import Settings, load_settings
from dnft.daemon import DaemonMain, run_daemon
from dnft.logging import configure_logging


def daemon_settings(args: argparse.Namespace) -> Settings:
    """``--config``'s settings, with logging configured at their level. Raises ConfigError."""
    settings = load_settings(args.config)
    configure_logging(settings.log_level)
    return settings


def serve(name: str, settings: Settings, main: DaemonMain) -> int:
    """Run ``main`` as daemon ``name`` until it returns or a signal stops it; the exit code."""
    return asyncio.run(run_daemon(name, settings, main))
