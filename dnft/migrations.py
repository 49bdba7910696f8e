"""Versioned SQL migrations from ``schemas/migrations``: idempotent and safe to run concurrently.

Files are named ``NNNN_description.sql`` and applied in order, each in its own transaction,
under a Postgres advisory lock so concurrent ``dnft migrate`` runs serialise instead of racing.
An applied migration whose file changed since is an error: history is never rewritten.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from dnft.db import redact_dsn
from dnft.errors import MigrationError, ServiceError

# Arbitrary but fixed: the advisory lock key all dnft migrators agree on.
MIGRATION_LOCK_KEY = 0x646E6674_0001  # "dnft" + 1
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations() -> list[Migration]:
    found: list[Migration] = []
    for entry in resources.files("schemas").joinpath("migrations").iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text()))
        elif entry.name.endswith(".sql"):
            raise MigrationError(f"migration file {entry.name} is not named NNNN_name.sql")
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise MigrationError(
                f"migration versions must be 1..N without gaps; "
                f"found {migration.version} where {expected} was expected"
            )
    return found


async def apply_migrations(dsn: str) -> list[Migration]:
    """Apply pending migrations; returns the ones this call applied (empty if up to date)."""
    try:
        conn = await asyncpg.connect(dsn)
    except (OSError, asyncpg.PostgresError) as exc:
        raise ServiceError(f"cannot connect to Postgres at {redact_dsn(dsn)}: {exc}") from exc
    try:
        await conn.execute("select pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        try:
            return await _apply_locked(conn)
        finally:
            await conn.execute("select pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    finally:
        await conn.close()


async def _apply_locked(conn: asyncpg.Connection) -> list[Migration]:
    await conn.execute(
        """
        create table if not exists dnft_schema_migrations (
            version integer primary key,
            name text not null,
            checksum text not null,
            applied_at timestamptz not null default now()
        )
        """
    )
    applied = {
        r["version"]: r
        for r in await conn.fetch("select version, name, checksum from dnft_schema_migrations")
    }
    migrations = load_migrations()
    known = {m.version for m in migrations}
    unknown = sorted(set(applied) - known)
    if unknown:
        raise MigrationError(
            f"database has migrations {unknown} that this dnft does not know: "
            "it is older than the schema; upgrade dnft"
        )
    done: list[Migration] = []
    for migration in migrations:
        row = applied.get(migration.version)
        if row is not None:
            if row["checksum"] != migration.checksum:
                raise MigrationError(
                    f"migration {migration.version}_{migration.name} changed "
                    "after it was applied; add a new migration instead"
                )
            continue
        async with conn.transaction():
            await conn.execute(migration.sql)
            await conn.execute(
                "insert into dnft_schema_migrations (version, name, checksum) values ($1,$2,$3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
        done.append(migration)
    return done


async def current_version(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        exists = await conn.fetchval("select to_regclass('dnft_schema_migrations') is not null")
        if not exists:
            return 0
        version: int | None = await conn.fetchval("select max(version) from dnft_schema_migrations")
        return version or 0
    finally:
        await conn.close()
