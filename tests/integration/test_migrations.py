"""`dnft migrate` against a real Postgres: idempotent, concurrent-safe, history protected."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import asyncpg
import pytest

from dnft.config import PostgresSettings
from dnft.db import connect, create_pool
from dnft.errors import MigrationError
from dnft.migrations import (
    MIGRATION_LOCK_KEY,
    apply_migrations,
    current_version,
    load_migrations,
)


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


class TestTimeouts:
    """Nothing waits on Postgres forever: the migration lock and each query are bounded."""

    async def test_migration_lock_wait_is_bounded(self, fresh_db_dsn: str) -> None:
        holder = await asyncpg.connect(fresh_db_dsn)  # a migrator stuck elsewhere
        try:
            await holder.execute("select pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
            bounds = PostgresSettings(dsn=fresh_db_dsn, migration_lock_timeout_s=1)
            began = time.monotonic()
            with pytest.raises(MigrationError, match=r"postgres\.migration_lock_timeout_s"):
                await apply_migrations(fresh_db_dsn, bounds)
            waited = time.monotonic() - began
            assert 0.9 <= waited < 5, f"gave up after {waited:.1f} s, not about 1 s"
            assert await current_version(fresh_db_dsn) == 0, "nothing applied without the lock"
            await holder.execute("select pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
            assert len(await apply_migrations(fresh_db_dsn, bounds)) == len(load_migrations())
        finally:
            await holder.close()

    async def test_command_timeout_cancels_a_slow_query(self, fresh_db_dsn: str) -> None:
        bounds = PostgresSettings(dsn=fresh_db_dsn, command_timeout_s=0.5)
        pool = await create_pool(bounds)
        conn = await connect(bounds)
        try:
            for target in (pool, conn):
                began = time.monotonic()
                with pytest.raises(TimeoutError):
                    await target.fetchval("select pg_sleep(10)")
                assert time.monotonic() - began < 3, "the query ran past its timeout"
            assert await conn.fetchval("select 1") == 1, "the connection is usable afterwards"
        finally:
            await conn.close()
            await pool.close()
