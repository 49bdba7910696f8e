"""`dnft migrate` against a real Postgres: idempotent, concurrent-safe, history protected."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import asyncpg
import pytest

from dnft.errors import MigrationError
from dnft.migrations import apply_migrations, current_version, load_migrations


class TestMigrate:
    """Applying migrations leaves exactly one row per version, however it is run."""

    def test_cli_twice_leaves_one_schema_version(self, fresh_db_dsn: str) -> None:
        cmd = [sys.executable, "-m", "dnft", "migrate", "--dsn", fresh_db_dsn]
        first = subprocess.run(cmd, capture_output=True, text=True, check=True)
        second = subprocess.run(cmd, capture_output=True, text=True, check=True)
        latest = len(load_migrations())
        assert "applied 0001_" in first.stdout
        assert f"schema at version {latest} (nothing to apply)" in second.stdout

        async def rows() -> list[asyncpg.Record]:
            conn = await asyncpg.connect(fresh_db_dsn)
            try:
                return list(await conn.fetch("select version from dnft_schema_migrations"))
            finally:
                await conn.close()

        versions = [r["version"] for r in asyncio.run(rows())]
        assert versions == list(range(1, latest + 1))

    async def test_concurrent_runs_apply_each_migration_once(self, fresh_db_dsn: str) -> None:
        results = await asyncio.gather(*(apply_migrations(fresh_db_dsn) for _ in range(4)))
        applied = [m.version for result in results for m in result]
        assert sorted(applied) == [m.version for m in load_migrations()]
        assert await current_version(fresh_db_dsn) == len(load_migrations())

    async def test_changed_applied_migration_is_refused(self, fresh_db_dsn: str) -> None:
        await apply_migrations(fresh_db_dsn)
        conn = await asyncpg.connect(fresh_db_dsn)
        try:
            await conn.execute("update dnft_schema_migrations set checksum = 'x' where version = 1")
        finally:
            await conn.close()
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await apply_migrations(fresh_db_dsn)
