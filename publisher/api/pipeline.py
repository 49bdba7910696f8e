"""``dnft api`` assembled: settings, Postgres, the blob store and the live feed wired into the
aiohttp application, served until asked to stop.

With ``api.curate.enabled``, /curate is served too (credentials required), and a Kafka
producer sends what curators' decisions imply (approved versions' metadata updates, re-roll
jobs). Replicas are independent (no leader; the public API is read-only): run as many as
traffic needs behind a load balancer; each LISTENs for new versions itself. Ready
(``/readyz`` on the side port) while Postgres answers and the LISTEN connection is up.

Everything a server opens (pool, LISTEN connection, curation producer, the application
runner) is owned by one :class:`~dnft.resources.DaemonResources` and closed in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from aiohttp import web

from dnft.collection import BoundCollection, load_bound_collections
from dnft.config import Settings
from dnft.errors import ConfigError
from dnft.health import HealthServer
from dnft.resources import DaemonResources
from dnft.storage import AsyncBlobStore, blob_store
from publisher.api.app import build_app
from publisher.api.caching import BlobCache
from publisher.api.context import ApiContext
from publisher.api.curate_service import CurateContext
from publisher.api.live import VersionFeed
from publisher.api.ratelimit import TokenBucketLimiter

log = structlog.get_logger("dnft.api")


async def run_api(settings: Settings, stopping: asyncio.Event, health: HealthServer | None) -> None:
    """Serve until ``stopping``, then end live streams and finish requests in flight. Raises
    ConfigError for a bad collection setting and ServiceError when Postgres is unreachable."""
    server = ApiServer(settings)
    await server.start()
    if health is not None:
        health.add_readiness_check("api", server.ready)
    try:
        server.report_ready()
        assert server.context is not None
        log.info(
            "api serving",
            host=settings.api.host,
            port=server.bound_port,
            collection=server.context.default.collection.name,
        )
        await stopping.wait()
    finally:
        await server.stop()


def default_collection(settings: Settings, collections: list[BoundCollection]) -> BoundCollection:
    """The collection /tokens/{id} serves: ``api.collection``, or the only one configured.
    Raises ConfigError naming ``api.collection``."""
    names = [c.collection.name for c in collections]
    wanted = settings.api.collection
    if wanted is None:
        if len(collections) == 1:
            return collections[0]
        raise ConfigError(
            "api.collection",
            f"several collections are configured ({names}): name the one /tokens/{{id}} serves",
        )
    for bound in collections:
        if bound.collection.name == wanted:
            return bound
    raise ConfigError("api.collection", f"no configured collection is named {wanted!r} ({names})")


class ApiServer:
    """The application on ``host:port`` with its pool and feed; ``start`` then ``stop``."""

    def __init__(self, settings: Settings, *, port: int | None = None) -> None:
        self._settings = settings
        self._port = settings.api.port if port is None else port
        self._stack: contextlib.AsyncExitStack | None = None
        self._resources: DaemonResources | None = None
        self._runner: web.AppRunner | None = None
        self.context: ApiContext | None = None
        self.bound_port: int | None = None

    async def start(self) -> None:
        """Open Postgres and the LISTEN connection, then serve. Raises ConfigError for a bad
        collection setting and ServiceError when Postgres is unreachable; whatever was opened
        is closed again."""
        settings = self._settings
        collections = load_bound_collections(settings)
        default = default_collection(settings, collections)
        stack = contextlib.AsyncExitStack()
        res = await stack.enter_async_context(DaemonResources(settings, "api"))
        try:
            self.context = await self._context(res, collections, default)
            # Streams end at shutdown (on_shutdown closes the feed), so the timeout is for
            # ordinary requests in flight.
            runner = web.AppRunner(build_app(self.context), access_log=None, shutdown_timeout=10.0)
            await runner.setup()
            res.on_close(runner.cleanup)
            self._runner = runner
            site = web.TCPSite(runner, settings.api.host, self._port)
            await site.start()
        except BaseException:
            await stack.aclose()
            self._runner = None
            self.context = None
            raise
        self._stack, self._resources = stack, res
        sockets = getattr(site._server, "sockets", None) or []
        self.bound_port = sockets[0].getsockname()[1] if sockets else self._port

    async def _context(
        self, res: DaemonResources, collections: list[BoundCollection], default: BoundCollection
    ) -> ApiContext:
        settings = self._settings
        pool = await res.pool()
        live = VersionFeed(
            settings.postgres.dsn,
            max_clients=settings.api.max_live_clients,
            max_per_client=settings.api.max_live_per_client,
        )
        res.on_close(live.close)
        await live.start()
        curate = None
        if settings.api.curate.enabled:
            curate = CurateContext.from_settings(settings, pool, collections)
            res.on_close(curate.stop)
            await curate.start()
        limits = settings.api.rate_limit
        return ApiContext(
            settings=settings.api,
            pool=pool,
            blobs=BlobCache(AsyncBlobStore(blob_store(settings)), settings.api.blob_cache_bytes),
            collections=tuple(collections),
            default=default,
            public_url=settings.regenerator.public_url.rstrip("/"),
            live=live,
            limiter=TokenBucketLimiter(
                limits.requests_per_s, limits.burst, max_clients=limits.max_clients
            ),
            curate=curate,
        )

    @property
    def app(self) -> web.Application | None:
        """The application while serving."""
        return self._runner.app if self._runner is not None else None

    def report_ready(self) -> None:
        """Report the API ready (``dnft_daemon_ready``) until ``stop``."""
        assert self._resources is not None, "start first"
        self._resources.ready()

    async def ready(self) -> str | None:
        """None when ready, else why not (a readiness check for the side server)."""
        if self.context is None:
            return "not started"
        if not self.context.live.connected:
            return "LISTEN connection to Postgres is down"
        await self.context.pool.fetchval("select 1")
        return None

    async def stop(self) -> None:
        """End live streams, finish requests in flight (10 s at most), close Postgres."""
        if self._stack is not None:
            await self._stack.aclose()
        self._stack = self._resources = self._runner = None
        self.context = None
