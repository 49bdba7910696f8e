"""Versioned SQL migrations from ``schemas/migrations``: idempotent and safe to run concurrently.

Files are named ``NNNN_description.sql`` and applied in order, each in its own transaction,
under a Postgres advisory lock so concurrent ``dnft migrate`` runs serialise instead of racing.
The wait for that lock is bounded (``postgres.migration_lock_timeout_s``, via ``lock_timeout``)
and every statement by ``postgres.command_timeout_s``: a stuck migrator elsewhere makes this
one fail with an error naming the setting, not hang. An applied migration whose file changed
since is an error: history is never rewritten.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from dnft.config import PostgresSettings
from dnft.db import connect
from dnft.errors import MigrationError

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


async def apply_migrations(dsn: str, settings: PostgresSettings | None = None) -> list[Migration]:
    """Apply pending migrations; returns the ones this call applied (empty if up to date).

    ``settings`` bound the connect, each statement and the wait for the migration lock (the
    defaults of ``postgres`` when None). Raises ServiceError (Postgres unreachable) and
    MigrationError (the lock not taken in time, a changed or unknown migration).
    """
    settings = _bounds(dsn, settings)
    conn = await connect(settings)
    try:
        await _lock(conn, settings.migration_lock_timeout_s)
        try:
            return await _apply_locked(conn)
        finally:
            await conn.execute("select pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    finally:
        await conn.close(timeout=settings.connect_timeout_s)


def _bounds(dsn: str, settings: PostgresSettings | None) -> PostgresSettings:
    if settings is None:
        return PostgresSettings(dsn=dsn)
    return settings.model_copy(update={"dsn": dsn})


async def _lock(conn: asyncpg.Connection, timeout_s: float) -> None:
    """Take the migration lock, waiting at most ``timeout_s``; raises MigrationError."""
    # lock_timeout bounds the server-side wait of pg_advisory_lock; set for this wait only.
    await conn.execute(f"set lock_timeout = {max(1, round(timeout_s * 1000))}")
    try:
        await conn.execute("select pg_advisory_lock($1)", MIGRATION_LOCK_KEY, timeout=timeout_s + 5)
    except (asyncpg.LockNotAvailableError, TimeoutError) as exc:
        raise MigrationError(
            f"another migration holds the migration lock: not taken within {timeout_s:g} s "
            "(postgres.migration_lock_timeout_s); is a `dnft migrate` stuck elsewhere? "
            "Find it in pg_locks (locktype 'advisory')"
        ) from exc
    finally:
        await conn.execute("reset lock_timeout")


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


async def current_version(dsn: str, settings: PostgresSettings | None = None) -> int:
    settings = _bounds(dsn, settings)
    conn = await connect(settings)
    try:
        exists = await conn.fetchval("select to_regclass('dnft_schema_migrations') is not null")
        if not exists:
            return 0
        version: int | None = await conn.fetchval("select max(version) from dnft_schema_migrations")
        return version or 0
    finally:
        await conn.close(timeout=settings.connect_timeout_s)
