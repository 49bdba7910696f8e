"""Singleton daemons: a leased Postgres session advisory lock elects one writer per scope.

The lock lives as long as the session that took it, and that session is made to end when its
leader stops answering (``postgres.lease_s``, Postgres >= 14):

- server side, ``idle_session_timeout`` and ``idle_in_transaction_session_timeout`` end a
  session that sent nothing for a lease (a frozen, SIGSTOPped or partitioned leader);
  ``statement_timeout`` bounds a query stuck in a wait; TCP keepalives (idle lease / 2,
  three probes lease / 6 apart: at least a lease in all) and ``tcp_user_timeout`` (a lease)
  drop the socket of a node that vanished. The lock goes with the session and a standby
  (retrying every ``retry_s``) takes over;
- client side, a heartbeat runs ``select 1`` every lease / 3. The lease is *valid* only while
  ``monotonic() < start of the last good heartbeat + lease - margin``: each of the server's
  bounds above counts at least a lease from the last packet it had from the leader, which
  came after that start, so the server cannot have ended the session before then.

Fencing: :meth:`LeaderLock.check` raises :class:`LeaseLost` unless the lease is valid, and
singletons call it right before every side effect (a Kafka produce, a checkpoint, a signed
transaction). A leader that wakes from a pause finds monotonic time past its lease and stops
before acting; a heartbeat that fails or finds the lease gone marks it lost, drops the
connection and wakes :meth:`LeaderLock.watch`, so the daemon steps down (it raises, exits,
and is restarted as a standby, as for any other ``ServiceError``).

Writers write through :meth:`LeaderLock.session`: one unit of work at a time (turns with the
heartbeat), fenced, on the lock's own connection, so a write after the session ended fails
instead of racing a new leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final, TypeVar

import asyncpg
import structlog

from dnft import metrics
from dnft.config import PostgresSettings
from dnft.db import connect
from dnft.errors import ServiceError

log = structlog.get_logger("dnft.leader")

T = TypeVar("T")

# The share of a lease kept back from its end: scheduling delay between a fence and the
# effect it guards, and clock-rate differences between the leader and the server.
LEASE_MARGIN: Final = 0.2


class LeaseLost(ServiceError):
    """This replica does not (or no longer) hold a valid leader lease: it must not act."""


def lock_key(scope: str) -> int:
    """A stable signed 64-bit advisory-lock key for a scope such as ``indexer:base``."""
    digest = hashlib.sha256(f"dnft:{scope}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lease_server_settings(settings: PostgresSettings, name: str) -> dict[str, str]:
    """The lock session's server-side bounds: it ends when its leader stops answering."""
    lease_ms = round(settings.lease_s * 1000)
    # Probes start after half the lease; three unanswered ones end the socket. Together at
    # least the whole lease: the server must never end the session (and free the lock for a
    # standby) while the leader's own clock still counts its lease valid (0.8 of it).
    idle_s = max(1, math.ceil(settings.lease_s / 2))
    interval_s = max(1, math.ceil(settings.lease_s / 6))
    return {
        "application_name": name[:63],
        "idle_session_timeout": str(lease_ms),
        "idle_in_transaction_session_timeout": str(lease_ms),
        "statement_timeout": str(round(settings.command_timeout_s * 1000)),
        "tcp_keepalives_idle": str(idle_s),
        "tcp_keepalives_interval": str(interval_s),
        "tcp_keepalives_count": "3",
        "tcp_user_timeout": str(lease_ms),
    }


class LeaderLock:
    """The leader lease of ``daemon`` for ``scope``: :meth:`acquire`, then :meth:`check`
    before each side effect, :meth:`session` for writes, :meth:`watch` to step down."""

    def __init__(
        self,
        settings: PostgresSettings,
        daemon: str,
        scope: str,
        retry_s: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._clock = clock  # monotonic: a pause advances it, wall-clock steps do not
        self._daemon = daemon
        self._scope = scope
        self._key = lock_key(f"{daemon}:{scope}")
        self._retry_s = retry_s
        self._conn: Any = None
        self._valid_until = 0.0
        self._lost: str | None = None
        self._lost_event = asyncio.Event()
        self._turn = asyncio.Lock()  # asyncpg runs one operation at a time per connection
        self._beat: asyncio.Task[None] | None = None
        self._log = log.bind(daemon=daemon, scope=scope)
        # Export 0 from the start, so a standby is visible as such (not as a missing series).
        metrics.daemon_leader.labels(daemon, scope).set(0)

    @property
    def lease_s(self) -> float:
        return self._settings.lease_s

    @property
    def connection(self) -> Any:
        """The lock's connection (an asyncpg Connection), once fenced; prefer :meth:`session`,
        which also takes turns with the heartbeat. Raises LeaseLost."""
        self.check()
        return self._conn

    def remaining_s(self) -> float:
        """Seconds of valid lease left (0 when not leading or lost)."""
        if self._conn is None or self._lost is not None:
            return 0.0
        return max(0.0, self._valid_until - self._clock())

    def check(self) -> None:
        """The fence: return only while this replica leads with a valid lease; else mark it
        lost (once) and raise LeaseLost. Call it right before every side effect."""
        if self._lost is not None:
            raise LeaseLost(self._message(self._lost))
        if self._conn is None:
            raise LeaseLost(self._message("not leading"))
        if self._conn.is_closed():
            self._lose("the lock's connection is closed")
        overdue = self._clock() - self._valid_until
        if overdue >= 0:
            self._lose(f"lease ran out {overdue:.1f} s ago (a pause or a stalled heartbeat)")

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[Any]:
        """The lock's connection for one unit of work (a query or a transaction), fenced
        when the turn starts. Raises LeaseLost, also when the session ended under it."""
        async with self._turn:
            self.check()
            conn = self._conn
            try:
                yield conn
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                if conn.is_closed():
                    self._lose(f"the lock's session ended: {exc!r}", cause=exc)
                raise

    async def watch(self, stopping: asyncio.Event | None = None) -> None:
        """Raise LeaseLost as soon as the lease is lost; return once ``stopping`` is set."""
        lost = asyncio.create_task(self._lost_event.wait())
        waits = {lost}
        if stopping is not None:
            waits.add(asyncio.create_task(stopping.wait()))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        if self._lost_event.is_set():
            raise LeaseLost(self._message(self._lost or "lost"))

    async def while_leading(self, work: Awaitable[T]) -> T:
        """Run ``work`` to its end, unless the lease is lost first: then cancel it and raise
        LeaseLost (stepping down does not wait for the next fence)."""
        task = asyncio.ensure_future(work)
        watch = asyncio.create_task(self.watch())
        try:
            await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                return task.result()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task  # its own error after a lost lease is a consequence, not the cause
            watch.result()  # raises LeaseLost
            raise AssertionError("unreachable: the watch returned")
        finally:
            for pending in (task, watch):
                if not pending.done():
                    pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.gather(task, watch, return_exceptions=True)

    async def try_acquire(self) -> bool:
        """One attempt; True if this process now leads. Raises ServiceError if Postgres is
        down (or older than 14: ``idle_session_timeout`` is refused at connect)."""
        name = f"dnft-{self._daemon}-{self._scope}"
        conn = await connect(
            self._settings, server_settings=lease_server_settings(self._settings, name)
        )
        try:
            started = self._clock()
            got = bool(await conn.fetchval("select pg_try_advisory_lock($1)", self._key))
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            conn.terminate()
            raise ServiceError(f"leader lock {self._daemon}:{self._scope}: {exc!r}") from exc
        if not got:
            await self._close(conn)
            return False
        self._conn = conn
        self._lost = None
        self._lost_event.clear()
        self._valid_until = started + self.lease_s * (1 - LEASE_MARGIN)
        self._beat = asyncio.create_task(self._heartbeat(), name=f"lease:{name}")
        metrics.daemon_leader.labels(self._daemon, self._scope).set(1)
        self._log.info("leader lock acquired", lease_s=self.lease_s)
        return True

    async def acquire(self, stopping: asyncio.Event | None = None) -> bool:
        """Wait until this process leads (True) or ``stopping`` is set (False)."""
        announced = False
        while stopping is None or not stopping.is_set():
            try:
                if await self.try_acquire():
                    return True
            except ServiceError as exc:
                self._log.warning("leader lock: postgres unavailable", error=str(exc))
            if not announced:
                self._log.info("standby: another replica leads")
                announced = True
            if stopping is None:
                await asyncio.sleep(self._retry_s)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), self._retry_s)
        return False

    async def release(self) -> None:
        """Stop the heartbeat, unlock and close (a no-op when not leading)."""
        if self._beat is not None:
            beat, self._beat = self._beat, None
            beat.cancel()
            # Cancelled mid-query, asyncpg may raise its own error: the lock goes anyway.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await beat
        if self._conn is not None:
            conn, self._conn = self._conn, None
            metrics.daemon_leader.labels(self._daemon, self._scope).set(0)
            if not conn.is_closed():
                try:
                    timeout = self._settings.heartbeat_s
                    await conn.execute("select pg_advisory_unlock($1)", self._key, timeout=timeout)
                except Exception:  # ending the session releases the lock as well
                    conn.terminate()
                finally:
                    await self._close(conn)

    # --- internals ------------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        """Prove the session alive every lease / 3; the first failure loses the lease."""
        every_s = self._settings.heartbeat_s
        try:
            while True:
                await asyncio.sleep(every_s)
                async with self._turn:
                    self.check()  # waking after the lease ran out must not renew it
                    started = self._clock()
                    # Bounded here, not only by the driver: a stalled server must not
                    # stall the heartbeat past the lease.
                    async with asyncio.timeout(every_s):
                        await self._conn.fetchval("select 1")
                self._valid_until = started + self.lease_s * (1 - LEASE_MARGIN)
        except LeaseLost:
            return  # check() marked it lost
        except Exception as exc:  # any failure, driver errors included, loses it
            self._lose(f"heartbeat failed: {exc!r}", raise_=False)

    def _lose(
        self, reason: str, *, cause: BaseException | None = None, raise_: bool = True
    ) -> None:
        """Mark the lease lost (once): drop the connection (the server releases the lock with
        it), export, log; raise LeaseLost unless ``raise_`` is False."""
        if self._lost is None:
            self._lost = reason
            if self._conn is not None and not self._conn.is_closed():
                self._conn.terminate()
            metrics.daemon_leader.labels(self._daemon, self._scope).set(0)
            metrics.leader_lease_lost_total.labels(self._daemon, self._scope).inc()
            self._log.error("leader lease lost; stepping down", reason=reason)
            self._lost_event.set()
        if raise_:
            raise LeaseLost(self._message(self._lost)) from cause

    def _message(self, reason: str) -> str:
        return f"{self._daemon} lost its leader lease for {self._scope}: {reason}"

    async def _close(self, conn: Any) -> None:
        try:
            await conn.close(timeout=self._settings.heartbeat_s)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
            conn.terminate()
