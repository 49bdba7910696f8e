"""What every handler of ``dnft api`` shares: the application's context and small helpers.

Route modules import from here, and the application (:mod:`publisher.api.app`) imports the
route modules: nothing imports back up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import orjson
from aiohttp import web

from dnft.collection import BoundCollection
from dnft.config import ApiSettings
from publisher.api.caching import BlobCache
from publisher.api.curate_service import CurateContext
from publisher.api.forwarded import client_address
from publisher.api.live import VersionFeed
from publisher.api.ratelimit import TokenBucketLimiter

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class ApiContext:
    """What handlers need; one per application."""

    settings: ApiSettings
    pool: asyncpg.Pool
    blobs: BlobCache
    collections: tuple[BoundCollection, ...]
    # The collection /tokens/{id} serves.
    default: BoundCollection
    # Base of the absolute URLs in JSON (regenerator.public_url, as in the stored metadata).
    public_url: str
    live: VersionFeed
    limiter: TokenBucketLimiter
    # /curate (api.curate.enabled): credentials, decisions, the outbox sender.
    curate: CurateContext | None = None


CONTEXT = web.AppKey("dnft_api_context", ApiContext)


def context(request: web.Request) -> ApiContext:
    return request.app[CONTEXT]


def client_of(request: web.Request) -> str:
    """The client's address: the peer, or what ``api.trusted_proxies`` proxies (connecting
    from ``api.trusted_proxy_networks``) say it is."""
    settings = context(request).settings
    return client_address(
        request.remote,
        request.headers.getall("X-Forwarded-For", []),
        settings.trusted_proxies,
        settings.trusted_proxy_networks,
    )


def json_response(
    body: object, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps(body),
        content_type="application/json",
        headers=headers,
    )


def under_curate(path: str) -> bool:
    """Whether a request path belongs to /curate (any case: nothing there slips past auth)."""
    lowered = path.lower()
    return lowered == "/curate" or lowered.startswith("/curate/")
