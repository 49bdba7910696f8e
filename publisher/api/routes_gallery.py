"""The holders' gallery: the collection page, a token's page, its live event stream and the
static files. Pages are rendered on the server (they work without JavaScript); the script
adds scrubbing without reloads and live updates."""

from __future__ import annotations

import functools
import hashlib
from importlib import resources

from aiohttp import web

from dnft import metrics
from publisher.api import pages, queries
from publisher.api.caching import etag_of_sha256, not_modified
from publisher.api.context import client_of, context
from publisher.api.errors import NotFoundError
from publisher.api.history import history
from publisher.api.live import Resync, sse_event, start_stream, wait_woken
from publisher.api.routes_api import require_token
from publisher.api.security import hsts_of
from publisher.api.timeline import alt_text, display_name
from publisher.api.validation import (
    MAX_TOKEN_ID,
    MAX_VERSION,
    parse_cursor,
    parse_token_id,
    parse_version,
)

CARDS_PAGE = 48
# Versions a token page lists on the server (the script loads every version by itself).
PAGE_VERSIONS = 2000
_HISTORY_BATCH = 500
STATIC_TYPES = {
    "gallery.css": "text/css",
    "gallery.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
}


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/tokens/{token_id}/view", token_view)
    app.router.add_get("/tokens/{token_id}/events", events)
    app.router.add_get("/static/{name}", static)


def _html(body: str) -> web.Response:
    return web.Response(
        text=body, content_type="text/html", charset="utf-8", headers={"Cache-Control": "no-cache"}
    )


async def index(request: web.Request) -> web.Response:
    """The default collection's tokens, each with its current image, name and stage."""
    ctx = context(request)
    raw_after = request.query.get("after")
    after = parse_cursor(raw_after, "after", MAX_TOKEN_ID) if raw_after is not None else -1
    rows = await queries.latest_versions(
        ctx.pool, ctx.default.collection.name, after_token=after, limit=CARDS_PAGE + 1
    )
    more = len(rows) > CARDS_PAGE
    rows = rows[:CARDS_PAGE]
    cards = [
        {
            "token_id": r.token_id,
            "version": r.version,
            "name": display_name(r),
            "stage": str(r.state.get("stage", "")),
            "image_sha256": r.image_sha256,
            "image_alt": alt_text(r),
        }
        for r in rows
    ]
    bound = ctx.default.collection
    return _html(
        pages.index_page(
            collection=bound.name,
            description=bound.description,
            cards=cards,
            next_url=f"/?after={rows[-1].token_id}" if more else None,
        )
    )


async def token_view(request: web.Request) -> web.Response:
    """A token's page: the selected (default: latest) version's art and traits, and the
    timeline of every version with what triggered it."""
    ctx = context(request)
    token_id = parse_token_id(request.match_info["token_id"])
    raw_version = request.query.get("version")
    wanted = parse_version(raw_version) if raw_version is not None else None
    await require_token(ctx, token_id)
    entries: list[dict[str, object]] = []
    more = True
    while more and len(entries) < PAGE_VERSIONS:
        after = int(str(entries[-1]["version"])) if entries else 0
        batch, more = await history(
            ctx.pool, ctx.default, ctx.public_url, token_id, after=after, limit=_HISTORY_BATCH
        )
        entries.extend(batch)
    by_number = {int(str(e["version"])): e for e in entries}
    selected = entries[-1] if wanted is None else by_number.get(wanted)
    if selected is None:
        raise NotFoundError(f"token {token_id} has no version {wanted}")
    return _html(
        pages.token_page(
            collection=ctx.default.collection.name,
            token_id=token_id,
            entries=entries,
            selected=selected,
            image_size=ctx.default.collection.image_size,
        )
    )


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: every version after ``Last-Event-ID`` (or ``?after=``), then each
    new one as it is committed; keep-alive comments in between. Ends when the client leaves
    or the server shuts down."""
    ctx = context(request)
    token_id = parse_token_id(request.match_info["token_id"])
    raw_after = request.headers.get("Last-Event-ID") or request.query.get("after")
    after = parse_cursor(raw_after, "after", MAX_VERSION)
    await require_token(ctx, token_id)
    name = ctx.default.collection.name
    # Subscribe before the first read: a version committed in between wakes us, none slips by.
    sub = ctx.live.subscribe(name, token_id, client_of(request))
    response: web.StreamResponse | None = None
    try:
        response = await start_stream(request, hsts=hsts_of(ctx.settings))
        resync = Resync(ctx.settings.resync_s)
        woken = True  # read once at the start
        while not sub.closed:
            if woken or resync.due():
                sub.wake.clear()
                more = True
                while more:
                    batch, more = await history(
                        ctx.pool, ctx.default, ctx.public_url, token_id, after=after, limit=100
                    )
                    for entry in batch:
                        await response.write(sse_event(entry))
                        after = int(entry["version"])
                        metrics.api_live_events_total.inc()
            woken = await wait_woken(sub, ctx.settings.keepalive_s)
            if not woken and not sub.closed:
                await response.write(b": keep-alive\n\n")
        return response
    except ConnectionResetError:  # the page was closed
        return response if response is not None else web.Response(status=499)
    finally:
        ctx.live.unsubscribe(sub)


@functools.cache
def _static_file(name: str) -> tuple[bytes, str]:
    data = resources.files("publisher.api").joinpath("static", name).read_bytes()
    return data, etag_of_sha256(hashlib.sha256(data).hexdigest())


async def static(request: web.Request) -> web.Response:
    """The gallery's stylesheet and script (a fixed list: no path reaches the filesystem)."""
    name = request.match_info["name"]
    content_type = STATIC_TYPES.get(name)
    if content_type is None:
        raise NotFoundError(f"no static file {name[:40]!r}")
    data, etag = _static_file(name)
    hdrs = {"ETag": etag, "Cache-Control": "public, max-age=300"}
    if not_modified(request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers=hdrs)
    response = web.Response(body=data, content_type=content_type, headers=hdrs)
    response.charset = "utf-8"
    return response
