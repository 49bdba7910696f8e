"""Postgres access: one asyncpg pool per process, sized from settings."""

from __future__ import annotations

import asyncpg

from dnft.config import PostgresSettings
from dnft.errors import ServiceError


async def create_pool(settings: PostgresSettings) -> asyncpg.Pool:
    """Open the pool; raises ServiceError (without the DSN's password) if Postgres is down."""
    try:
        pool = await asyncpg.create_pool(
            settings.dsn, min_size=settings.min_pool_size, max_size=settings.max_pool_size
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise ServiceError(
            f"cannot connect to Postgres at {redact_dsn(settings.dsn)}: {exc}"
        ) from exc
    assert pool is not None
    return pool


def redact_dsn(dsn: str) -> str:
    """Drop the password from a DSN before it goes into an error or a log line."""
    scheme, sep, rest = dsn.partition("://")
    if not sep or "@" not in rest:
        return dsn
    userinfo, _, hostpart = rest.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{hostpart}" if ":" in userinfo else dsn
