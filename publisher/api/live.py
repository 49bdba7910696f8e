"""Live updates: new versions reach open gallery pages as server-sent events.

Postgres announces each committed version on the channel ``dnft_token_versions`` (a trigger
on ``token_versions``, migration 0005), so every API replica hears every version whoever
rendered it. :class:`VersionFeed` holds one LISTEN connection per replica and wakes the
streams open on that token; each stream then reads the versions it has not sent from Postgres
(the notification is only a hint, so nothing is lost if notifications are). A lost LISTEN
connection is re-opened with backoff, and every stream re-reads then; each stream also
re-reads every ``resync_s`` as a safety net, and sends a keep-alive comment every
``keepalive_s`` so proxies keep the connection open. ``close()`` ends every stream.

The browser's EventSource reconnects by itself with ``Last-Event-ID`` (the last version it
got), so a reconnect, even to another replica, resumes without gaps.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from typing import Any

import asyncpg
import orjson
import structlog
from aiohttp import web

from dnft import metrics
from dnft.db import redact_dsn
from dnft.errors import ServiceError
from publisher.api.errors import RateLimitedError, UnavailableError
from publisher.api.security import set_security_headers

log = structlog.get_logger("dnft.api.live")

CHANNEL = "dnft_token_versions"
# Tells the browser how long to wait before reconnecting a dropped stream.
RETRY_MS = 3000


class Subscription:
    """One open stream's interest in one token; ``wake`` is set when it should re-read."""

    __slots__ = ("client", "closed", "collection", "token_id", "wake")

    def __init__(self, collection: str, token_id: int, client: str) -> None:
        self.collection = collection
        self.token_id = token_id
        self.client = client
        self.wake = asyncio.Event()
        self.closed = False


class VersionFeed:
    """LISTENs for new versions and wakes the subscriptions of their token.

    ``start`` raises ServiceError if Postgres is unreachable; afterwards a lost connection is
    re-opened in the background (``connected`` says whether it is up now).
    """

    def __init__(
        self, dsn: str, *, max_clients: int, max_per_client: int, max_backoff_s: float = 10.0
    ) -> None:
        self._dsn = dsn
        self._max_clients = max_clients
        self._max_per_client = max_per_client
        # Open streams per client address (only clients with one open: bounded by the cap).
        self._per_client: dict[str, int] = {}
        self._max_backoff_s = max_backoff_s
        self._subs: defaultdict[tuple[str, int], set[Subscription]] = defaultdict(set)
        self._count = 0
        self._conn: asyncpg.Connection | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    @property
    def clients(self) -> int:
        return self._count

    async def start(self) -> None:
        try:
            await self._connect()
        except (OSError, asyncpg.PostgresError) as exc:
            raise ServiceError(
                f"cannot LISTEN on Postgres at {redact_dsn(self._dsn)}: {exc}"
            ) from exc

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self._dsn, timeout=10)
        try:
            await conn.add_listener(CHANNEL, self._on_notify)
        except BaseException:
            await conn.close()
            raise
        conn.add_termination_listener(self._on_lost)
        self._conn = conn

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            body = orjson.loads(payload)
            key = (str(body["collection"]), int(body["token_id"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("unreadable version notification", payload=payload[:200])
            return
        for sub in self._subs.get(key, ()):
            sub.wake.set()

    def _on_lost(self, _conn: Any) -> None:
        self._conn = None
        if not self._closing and self._reconnecting is None:
            log.warning("LISTEN connection lost; reconnecting")
            self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        delay = 0.25
        try:
            while not self._closing:
                try:
                    await self._connect()
                except (OSError, asyncpg.PostgresError) as exc:
                    log.warning("LISTEN reconnect failed", error=str(exc), retry_s=delay)
                    await asyncio.sleep(delay)
                    delay = min(self._max_backoff_s, delay * 2)
                    continue
                log.info("LISTEN connection restored")
                # Versions committed while nobody listened: every stream re-reads.
                for subs in self._subs.values():
                    for sub in subs:
                        sub.wake.set()
                return
        finally:
            self._reconnecting = None

    def subscribe(self, collection: str, token_id: int, client: str) -> Subscription:
        """A new subscription of ``client`` (its address); RateLimitedError when that client
        has ``max_per_client`` streams open, UnavailableError when this replica has
        ``max_clients`` open or the feed is closing."""
        if self._closing:
            raise UnavailableError("shutting down", headers={"Retry-After": "1"})
        if self._per_client.get(client, 0) >= self._max_per_client:
            metrics.api_live_refused_total.labels("per_client").inc()
            raise RateLimitedError(
                f"this client has {self._max_per_client} live streams open already",
                headers={"Retry-After": "5"},
            )
        if self._count >= self._max_clients:
            metrics.api_live_refused_total.labels("replica").inc()
            raise UnavailableError(
                f"this replica serves {self._max_clients} live streams already",
                headers={"Retry-After": "5"},
            )
        sub = Subscription(collection, token_id, client)
        self._subs[(collection, token_id)].add(sub)
        self._per_client[client] = self._per_client.get(client, 0) + 1
        self._count += 1
        metrics.api_live_clients.set(self._count)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        key = (sub.collection, sub.token_id)
        subs = self._subs.get(key)
        if subs is not None and sub in subs:
            subs.discard(sub)
            self._count -= 1
            if not subs:
                del self._subs[key]
            left = self._per_client.get(sub.client, 0) - 1
            if left > 0:
                self._per_client[sub.client] = left
            else:
                self._per_client.pop(sub.client, None)
        metrics.api_live_clients.set(self._count)

    async def close(self) -> None:
        """End every stream and stop listening."""
        self._closing = True
        for subs in self._subs.values():
            for sub in subs:
                sub.closed = True
                sub.wake.set()
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnecting
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(OSError, asyncpg.PostgresError):
                await conn.remove_listener(CHANNEL, self._on_notify)
            await conn.close()


def sse_event(entry: dict[str, Any]) -> bytes:
    """One ``version`` event; its id is the version number (the browser's Last-Event-ID)."""
    return b"id: %d\nevent: version\ndata: %s\n\n" % (entry["version"], orjson.dumps(entry))


async def wait_woken(sub: Subscription, timeout_s: float) -> bool:
    """Wait until ``sub`` is woken (True) or ``timeout_s`` passes (False)."""
    try:
        await asyncio.wait_for(sub.wake.wait(), timeout_s)
    except TimeoutError:
        return False
    return True


class Resync:
    """When a stream is due to re-read although nothing woke it."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._next = time.monotonic() + every_s

    def due(self) -> bool:
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self.every_s
        return True


async def start_stream(request: web.Request, *, hsts: str | None) -> web.StreamResponse:
    """Open a ``text/event-stream`` response (not cached, not buffered by proxies); ``hsts``
    as for :func:`set_security_headers`."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache, no-store",
            "X-Accel-Buffering": "no",
        }
    )
    set_security_headers(response, hsts=hsts)
    await response.prepare(request)
    await response.write(b"retry: %d\n\n" % RETRY_MS)
    return response
