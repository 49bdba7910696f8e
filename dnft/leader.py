"""Singleton daemons: a Postgres session advisory lock elects one writer per scope.

The lock lives as long as the connection that took it. Replicas that do not get it wait as
hot standbys and retry; when the leader dies its connection closes and a standby takes over.
Writers should write through :attr:`LeaderLock.connection`: if the lock was lost with the
connection, their writes fail instead of racing a new leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib

import asyncpg
import structlog

from dnft import metrics
from dnft.db import redact_dsn
from dnft.errors import ServiceError

log = structlog.get_logger("dnft.leader")


def lock_key(scope: str) -> int:
    """A stable signed 64-bit advisory-lock key for a scope such as ``indexer:base``."""
    digest = hashlib.sha256(f"dnft:{scope}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class LeaderLock:
    def __init__(self, dsn: str, daemon: str, scope: str, retry_s: float = 1.0) -> None:
        self._dsn = dsn
        self._daemon = daemon
        self._scope = scope
        self._key = lock_key(f"{daemon}:{scope}")
        self._retry_s = retry_s
        self._conn: asyncpg.Connection | None = None
        # Export 0 from the start, so a standby is visible as such (not as a missing series).
        metrics.daemon_leader.labels(daemon, scope).set(0)

    @property
    def connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            raise ServiceError(f"{self._daemon} lost its leader lock for {self._scope}")
        return self._conn

    async def try_acquire(self) -> bool:
        """One attempt; True if this process now leads. Raises ServiceError if Postgres is down."""
        try:
            conn = await asyncpg.connect(self._dsn)
        except (OSError, asyncpg.PostgresError) as exc:
            raise ServiceError(f"cannot reach Postgres at {redact_dsn(self._dsn)}: {exc}") from exc
        got = bool(await conn.fetchval("select pg_try_advisory_lock($1)", self._key))
        if not got:
            await conn.close()
            return False
        self._conn = conn
        metrics.daemon_leader.labels(self._daemon, self._scope).set(1)
        log.info("leader lock acquired", daemon=self._daemon, scope=self._scope)
        return True

    async def acquire(self, stopping: asyncio.Event | None = None) -> bool:
        """Wait until this process leads (True) or ``stopping`` is set (False)."""
        announced = False
        while stopping is None or not stopping.is_set():
            try:
                if await self.try_acquire():
                    return True
            except ServiceError as exc:
                log.warning("leader lock: postgres unavailable", error=str(exc))
            if not announced:
                log.info("standby: another replica leads", daemon=self._daemon, scope=self._scope)
                announced = True
            if stopping is None:
                await asyncio.sleep(self._retry_s)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), self._retry_s)
        return False

    async def release(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            metrics.daemon_leader.labels(self._daemon, self._scope).set(0)
            if not conn.is_closed():
                try:
                    await conn.execute("select pg_advisory_unlock($1)", self._key)
                finally:
                    await conn.close()
