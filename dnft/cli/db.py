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
    # --dsn alone must work without a config file (first deploy, CI); else the settings decide.
    dsn = args.dsn or load_settings(args.config).postgres.dsn

    async def run() -> tuple[list[str], int]:
        applied = await apply_migrations(dsn)
        return [f"{m.version:04d}_{m.name}" for m in applied], await current_version(dsn)

    applied, version = asyncio.run(run())
    for name in applied:
        print(f"applied {name}")
    print(f"schema at version {version}" + ("" if applied else " (nothing to apply)"))
    return 0
