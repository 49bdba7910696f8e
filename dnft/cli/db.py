"""``dnft migrate``: apply the SQL migrations (idempotent, safe to run concurrently)."""

from __future__ import annotations

import argparse
import asyncio

from dnft.cli.console import Commands, add_command
from dnft.config import load_settings
from dnft.migrations import apply_migrations, current_version


def register(sub: Commands) -> None:
    migrate = add_command(sub, "migrate", __doc__, _migrate)
    migrate.add_argument("--dsn", help="Postgres DSN (default: postgres.dsn from the config)")


def _migrate(args: argparse.Namespace) -> int:
    # --dsn alone must work without a config file (first deploy, CI): then the timeouts are
    # postgres' defaults; else the settings decide.
    settings = None if args.dsn else load_settings(args.config).postgres
    dsn = args.dsn or (settings.dsn if settings else "")

    async def run() -> tuple[list[str], int]:
        applied = await apply_migrations(dsn, settings)
        names = [f"{m.version:04d}_{m.name}" for m in applied]
        return names, await current_version(dsn, settings)

    applied, version = asyncio.run(run())
    for name in applied:
        print(f"applied {name}")
    print(f"schema at version {version}" + ("" if applied else " (nothing to apply)"))
    return 0
