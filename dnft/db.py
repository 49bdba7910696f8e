"""Postgres access: one asyncpg pool per process, sized and time-bounded from settings.

Every connection dnft opens gets ``postgres.connect_timeout_s`` to connect and
``postgres.command_timeout_s`` per query, so a stalled server or network raises instead of
holding a daemon (or its shutdown) forever.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol
from urllib.parse import unquote

import asyncpg

from dnft.config import PostgresSettings
from dnft.errors import ServiceError

# Query parameters of a libpq DSN that carry a secret.
_SECRET_PARAMS = frozenset({"password", "sslpassword"})


async def create_pool(settings: PostgresSettings) -> asyncpg.Pool:
    """Open the pool; raises ServiceError (without the DSN's password) if Postgres is down."""
    try:
        pool = await asyncpg.create_pool(
            settings.dsn,
            min_size=settings.min_pool_size,
            max_size=settings.max_pool_size,
            timeout=settings.connect_timeout_s,
            command_timeout=settings.command_timeout_s,
        )
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise ServiceError(
            f"cannot connect to Postgres at {redact_dsn(settings.dsn)}: {exc!r}"
        ) from exc
    assert pool is not None
    return pool


async def connect(
    settings: PostgresSettings, *, server_settings: dict[str, str] | None = None
) -> Any:
    """One connection with the settings' connect and command timeouts (an ``asyncpg``
    Connection); raises ServiceError (without the DSN's password) if Postgres is down."""
    try:
        return await asyncpg.connect(
            settings.dsn,
            timeout=settings.connect_timeout_s,
            command_timeout=settings.command_timeout_s,
            server_settings=server_settings,
        )
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise ServiceError(f"cannot reach Postgres at {redact_dsn(settings.dsn)}: {exc!r}") from exc


class Sessions(Protocol):
    """Where a store takes its connection for one unit of work (a query or a transaction)."""

    def session(self) -> AbstractAsyncContextManager[Any]: ...


class SerialConnection:
    """One plain connection as :class:`Sessions`: units of work take turns on it (asyncpg
    runs one operation at a time per connection)."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._turn = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[Any]:
        async with self._turn:
            yield self._conn


def redact_dsn(dsn: str) -> str:
    """Drop the passwords from a DSN (``user:password@`` and ``?password=`` / ``&password=``,
    the name percent-encoded or not) before it goes into an error or a log line."""
    scheme, sep, rest = dsn.partition("://")
    if not sep:
        return dsn
    # The query starts at the first "?"; user info ends at the last "@" before it (libpq
    # wants "?" and "@" inside a password percent-encoded).
    base, question, query = rest.partition("?")
    userinfo, at, hostpart = base.rpartition("@")
    if at and ":" in userinfo:
        base = f"{userinfo.split(':', 1)[0]}:***@{hostpart}"
    if not question:
        return f"{scheme}://{base}"
    params = []
    for param in query.split("&"):
        name, equals, _ = param.partition("=")
        secret = equals and unquote(name).strip().lower() in _SECRET_PARAMS
        params.append(f"{name}=***" if secret else param)
    return f"{scheme}://{base}?{'&'.join(params)}"
