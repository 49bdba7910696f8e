"""Helpers for oracle tests: a real aiohttp feed server, a hand-moved clock, and runners
wired to the real broker and Postgres exactly as the daemon wires them."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import asyncpg
import orjson
from aiohttp import web

from dnft import metrics
from dnft.config import Settings, settings_from_mapping
from dnft.kafka import AsyncProducer, ensure_topics
from dnft.validation import validate_message
from oracle_feeds import Clock, FeedRunner, FeedStore, ObservationPublisher, build_runners
from tests.support.kafka import read_topic

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ManualClock:
    """Wall-clock-like Unix time that moves only when the test says so (from a whole second,
    so times compare exactly after Postgres stored them at microsecond precision)."""

    def __init__(self, start: float | None = None) -> None:
        self.t = float(int(time.time())) if start is None else start

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class FeedServer:
    """A real HTTP server on 127.0.0.1 serving, per path, what the test scripted.

    ``serve(name, *handlers)`` queues handlers for ``/name``; each request takes the next one
    and the last one repeats. ``requests[name]`` counts requests; ``bodies[name]`` holds every
    body sent there in full (to check provenance hashes).
    """

    def __init__(self) -> None:
        self._scripts: dict[str, list[Handler]] = {}
        self.requests: dict[str, list[float]] = {}
        self.bodies: dict[str, list[bytes]] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{name}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        """Stop serving (a test may stop it early: the fixture's stop is then a no-op)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def url(self, name: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/{name}"

    def serve(self, name: str, *handlers: Handler) -> None:
        self._scripts[name] = list(handlers)

    def count(self, name: str) -> int:
        return len(self.requests.get(name, []))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.requests.setdefault(name, []).append(time.monotonic())
        script = self._scripts.get(name)
        if not script:
            return web.Response(status=404, text="no script")
        handler = script.pop(0) if len(script) > 1 else script[0]
        return await handler(request)

    # --- behaviours ---------------------------------------------------------------------

    def raw(
        self,
        body: bytes,
        *,
        status: int = 200,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            self.bodies.setdefault(request.match_info["name"], []).append(body)
            return web.Response(
                body=body, status=status, content_type=content_type, headers=headers
            )

        return handler

    def price(self, price: Any, ts: float | None = None) -> Handler:
        """``{"data": {"price": price, "ts": ts}}``; a str price is sent as a JSON string."""
        doc: dict[str, Any] = {"price": price}
        if ts is not None:
            doc["ts"] = ts
        return self.raw(orjson.dumps({"data": doc}))

    def drip(self, seconds: float, step_s: float = 0.05) -> Handler:
        """A valid body sent one byte per ``step_s`` (a slow drip)."""
        body = orjson.dumps({"data": {"price": "1"}}) + b" " * int(seconds / step_s)

        async def handler(request: web.Request) -> web.StreamResponse:
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            await resp.prepare(request)
            try:
                for i in range(len(body)):
                    await resp.write(body[i : i + 1])
                    await asyncio.sleep(step_s)
            except ConnectionError:
                pass  # the client gave up, as it should
            return resp

        return handler

    def endless(self, chunk: int = 64 * 1024) -> Handler:
        """A chunked body without Content-Length that never ends (a huge body)."""

        async def handler(request: web.Request) -> web.StreamResponse:
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            await resp.prepare(request)
            try:
                await resp.write(b'{"data": {"price": "1", "pad": "')
                for _ in range(10_000):
                    await resp.write(b"x" * chunk)
            except ConnectionError:
                pass
            return resp

        return handler

    def redirect(self, location: str, status: int = 302) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            return web.Response(status=status, headers={"Location": location})

        return handler


def unique_feed_id(prefix: str) -> str:
    """Metrics are process-wide: each test counts under a feed id of its own."""
    return f"{prefix}-{time.monotonic_ns() % 10**9}"


def http_feed(server: FeedServer, feed_id: str, path: str = "eth", **extra: Any) -> dict[str, Any]:
    """An HTTP feed reading ``data.price`` (and ``data.ts``) from ``server``, loopback allowed."""
    feed: dict[str, Any] = {
        "kind": "http",
        "id": feed_id,
        "url": server.url(path),
        "value_path": "data.price",
        "allow_private_hosts": True,
        "interval_s": 10,
        "timeout_s": 2,
    }
    feed.update(extra)
    return feed


def oracle_settings(
    feeds: list[dict[str, Any]],
    *,
    bootstrap: str,
    dsn: str,
    topic: str,
    networks: list[dict[str, Any]] | None = None,
    http_port: int = 0,
) -> Settings:
    raw = {
        "http": {"port": http_port},
        "networks": networks or [],
        "kafka": {
            "bootstrap_servers": [bootstrap],
            "topics": {"oracle_observations": topic},
            "partitions": 2,
            "producer": {"linger_ms": 0},
        },
        "postgres": {"dsn": dsn},
        "feeds": feeds,
    }
    return settings_from_mapping(raw, {})


class OracleSettingsFor(Protocol):
    """The ``oracle_settings_for`` fixture: :func:`oracle_settings` with the test's broker,
    database and topic filled in."""

    def __call__(
        self, *feeds: dict[str, Any], networks: list[dict[str, Any]] | None = None
    ) -> Settings: ...


class Oracle:
    """Every feed of ``settings`` as the daemon wires them (store, publisher, runners) but
    stepped by the test: ``async with Oracle(settings, clock) as oracle:`` then
    ``await oracle["feed-id"].step()``. Leaving the block is a clean stop; entering again
    with the same settings is a restart."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.producer = AsyncProducer(settings.kafka)
        self.conn: asyncpg.Connection | None = None
        self.runners: dict[str, FeedRunner] = {}
        self.publisher: ObservationPublisher | None = None

    async def __aenter__(self) -> Oracle:
        await self.producer.start()
        await ensure_topics(
            self.settings.kafka,
            {self.settings.kafka.topics.oracle_observations: self.settings.kafka.partitions},
        )
        self.conn = await asyncpg.connect(self.settings.postgres.dsn)
        store = FeedStore(self.conn)
        self.publisher = ObservationPublisher(
            self.producer, store, self.settings.kafka.topics.oracle_observations
        )
        self.runners = build_runners(
            self.settings, store=store, publisher=self.publisher, clock=self.clock
        )
        for runner in self.runners.values():
            await runner.start()
        return self

    def __getitem__(self, feed_id: str) -> FeedRunner:
        return self.runners[feed_id]

    async def __aexit__(self, *exc: object) -> None:
        for runner in self.runners.values():
            await runner.close()
        if self.conn is not None:
            await self.conn.close()
        await self.producer.close()


async def observations(settings: Settings, feed_id: str | None = None) -> list[dict[str, Any]]:
    """Every observation on the topic (schema-checked), in round order per feed."""
    bootstrap = settings.kafka.bootstrap_servers[0]
    topic = settings.kafka.topics.oracle_observations
    messages = await asyncio.to_thread(read_topic, bootstrap, topic)
    for m in messages:
        assert m["_key"] == m["feed_id"], "keyed by feed id"
        body = {k: v for k, v in m.items() if not k.startswith("_")}
        validate_message(body)
    if feed_id is not None:
        messages = [m for m in messages if m["feed_id"] == feed_id]
    return messages


def rounds(stream: list[dict[str, Any]]) -> list[tuple[int, str, str]]:
    """(round, value, reason) of each observation."""
    return [(m["round_id"], m["value"], m["reason"]) for m in stream]


def dedupe(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a consumer keeps: the first message of each (feed_id, round_id)."""
    seen: set[tuple[str, int]] = set()
    out = []
    for m in messages:
        key = (m["feed_id"], m["round_id"])
        if key not in seen:
            seen.add(key)
            out.append(m)
    return out


def counted(feed_id: str, outcome: str) -> float:
    """``dnft_oracle_observations_total{feed, outcome}`` as exported."""
    value = metrics.registry.get_sample_value(
        "dnft_oracle_observations_total", {"feed": feed_id, "outcome": outcome}
    )
    return value or 0.0


def published(feed_id: str, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "dnft_oracle_publishes_total", {"feed": feed_id, "reason": reason}
    )
    return value or 0.0


def sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()
