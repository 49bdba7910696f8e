"""The JSON API: token metadata (current and by version), version history, images, collections
and the OpenAPI document. Every handler validates its path first (``validation``), reads
Postgres and the blob store, and answers with caching headers; it never writes."""

from __future__ import annotations

import orjson
from aiohttp import web

from dnft.collection import BoundCollection
from dnft.storage import BlobNotFoundError, StorageError
from publisher.api import queries
from publisher.api.caching import (
    IMMUTABLE,
    etag_of,
    etag_of_sha256,
    image_content_type,
    not_modified,
    short_lived,
)
from publisher.api.context import ApiContext, context
from publisher.api.errors import BadRequestError, NotFoundError, UnavailableError
from publisher.api.history import history
from publisher.api.openapi import openapi_document
from publisher.api.queries import VersionRow
from publisher.api.validation import (
    MAX_TOKEN_ID,
    MAX_VERSION,
    parse_address,
    parse_chain_id,
    parse_cursor,
    parse_limit,
    parse_sha256,
    parse_token_id,
    parse_version,
)

VERSIONS_PAGE = 100
VERSIONS_PAGE_MAX = 500
TOKENS_PAGE = 100
TOKENS_PAGE_MAX = 500


def add_routes(app: web.Application) -> None:
    app.router.add_get("/tokens/{token_id}", current_metadata)
    app.router.add_get("/tokens/{token_id}/versions", version_list)
    app.router.add_get("/tokens/{token_id}/versions/{version}", version_metadata)
    app.router.add_get("/images/{sha256}", image)
    app.router.add_get("/collections/{address}", collection)
    app.router.add_get("/openapi.json", openapi)


def cached(
    request: web.Request, body: bytes, etag: str, cache_control: str, content_type: str
) -> web.Response:
    """``body`` with its validators, or 304 when the client has it already."""
    hdrs = {"ETag": etag, "Cache-Control": cache_control}
    if not_modified(request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers=hdrs)
    return web.Response(body=body, content_type=content_type, headers=hdrs)


async def require_token(ctx: ApiContext, token_id: int) -> VersionRow:
    """The token's latest version; NotFoundError when it has none."""
    name = ctx.default.collection.name
    latest = await queries.latest_version(ctx.pool, name, token_id)
    if latest is not None:
        return latest
    if await queries.token_known(ctx.pool, name, token_id):
        raise NotFoundError(f"token {token_id} has no rendered version yet; try again shortly")
    raise NotFoundError(f"no token {token_id} in collection {name!r}")


async def blob(ctx: ApiContext, sha256: str) -> bytes:
    try:
        return await ctx.blobs.get(sha256)
    # The messages are logged with a request id; the 503 body says nothing of storage.
    except BlobNotFoundError:
        raise UnavailableError(f"blob {sha256} is missing from storage") from None
    except StorageError as exc:
        raise UnavailableError(
            f"storage failed: {type(exc).__name__}: {exc}", headers={"Retry-After": "5"}
        ) from None


async def current_metadata(request: web.Request) -> web.Response:
    """The latest version's metadata document, byte for byte as stored (its sha256 is the
    ETag), cached briefly: a new version may replace it any time."""
    ctx = context(request)
    token_id = parse_token_id(request.match_info["token_id"])
    latest = await require_token(ctx, token_id)
    body = await blob(ctx, latest.metadata_sha256)
    response = cached(
        request,
        body,
        etag_of_sha256(latest.metadata_sha256),
        short_lived(ctx.settings.current_max_age_s),
        "application/json",
    )
    response.headers["Content-Location"] = f"/tokens/{token_id}/versions/{latest.version}"
    return response


async def version_metadata(request: web.Request) -> web.Response:
    """One version's metadata document as stored; immutable."""
    ctx = context(request)
    token_id = parse_token_id(request.match_info["token_id"])
    number = parse_version(request.match_info["version"])
    row = await queries.version(ctx.pool, ctx.default.collection.name, token_id, number)
    if row is None:
        await require_token(ctx, token_id)  # 404 for the token, if it is the token
        raise NotFoundError(f"token {token_id} has no version {number}")
    body = await blob(ctx, row.metadata_sha256)
    return cached(request, body, etag_of_sha256(row.metadata_sha256), IMMUTABLE, "application/json")


async def version_list(request: web.Request) -> web.Response:
    """Versions oldest first with their causes and changes; ``after``/``limit`` page it."""
    ctx = context(request)
    token_id = parse_token_id(request.match_info["token_id"])
    after = parse_cursor(request.query.get("after"), "after", MAX_VERSION)
    limit = parse_limit(
        request.query.get("limit"), default=VERSIONS_PAGE, maximum=VERSIONS_PAGE_MAX
    )
    await require_token(ctx, token_id)
    entries, more = await history(
        ctx.pool, ctx.default, ctx.public_url, token_id, after=after, limit=limit
    )
    last = entries[-1]["version"] if entries else after
    body = {
        "collection": ctx.default.collection.name,
        "token_id": str(token_id),
        "versions": entries,
        "next": f"/tokens/{token_id}/versions?after={last}&limit={limit}" if more else None,
    }
    return current_json(request, ctx, body)


async def image(request: web.Request) -> web.Response:
    """An image by its sha256: only images some version names; immutable."""
    ctx = context(request)
    sha256 = parse_sha256(request.match_info["sha256"])
    if not await queries.image_known(ctx.pool, sha256):
        raise NotFoundError(f"no image {sha256}")
    body = await blob(ctx, sha256)
    return cached(request, body, etag_of_sha256(sha256), IMMUTABLE, image_content_type(body))


def _find_collection(ctx: ApiContext, address: str, chain_id: int | None) -> BoundCollection:
    found = [
        c
        for c in ctx.collections
        if c.contract == address and (chain_id is None or c.chain_id == chain_id)
    ]
    if not found:
        raise NotFoundError(f"no collection follows contract {address}")
    if len(found) > 1:
        chains = sorted(c.chain_id for c in found)
        raise BadRequestError(f"contract {address} is on several chains {chains}: add ?chain_id=")
    return found[0]


async def collection(request: web.Request) -> web.Response:
    """A collection (contract-level metadata) and its tokens' current versions, paged."""
    ctx = context(request)
    address = parse_address(request.match_info["address"])
    raw_chain = request.query.get("chain_id")
    bound = _find_collection(ctx, address, parse_chain_id(raw_chain) if raw_chain else None)
    raw_after = request.query.get("after")
    after = parse_cursor(raw_after, "after", MAX_TOKEN_ID) if raw_after is not None else -1
    limit = parse_limit(request.query.get("limit"), default=TOKENS_PAGE, maximum=TOKENS_PAGE_MAX)
    rows = await queries.latest_versions(
        ctx.pool, bound.collection.name, after_token=after, limit=limit + 1
    )
    more = len(rows) > limit
    rows = rows[:limit]
    served = bound is ctx.default  # /tokens/{id} serves the default collection only
    tokens = [
        {
            "token_id": str(r.token_id),
            "version": r.version,
            "name": r.name,
            "image": r.image_url,
            "image_sha256": r.image_sha256,
            "metadata": f"{ctx.public_url}/tokens/{r.token_id}" if served else None,
            "metadata_sha256": r.metadata_sha256,
        }
        for r in rows
    ]
    query = f"&chain_id={bound.chain_id}" if raw_chain else ""
    body = {
        "name": bound.collection.name,
        "description": bound.collection.description,
        "chain_id": bound.chain_id,
        "contract": bound.contract,
        "tokens": tokens,
        "next": (
            f"/collections/{address}?after={rows[-1].token_id}&limit={limit}{query}"
            if more
            else None
        ),
    }
    return current_json(request, ctx, body)


def current_json(request: web.Request, ctx: ApiContext, body: object) -> web.Response:
    """``body`` as JSON that may change at any time: short-lived caching, revalidated by ETag."""
    data = orjson.dumps(body)
    return cached(
        request,
        data,
        etag_of(data),
        short_lived(ctx.settings.current_max_age_s),
        "application/json",
    )


async def openapi(request: web.Request) -> web.Response:
    data = orjson.dumps(openapi_document(context(request).public_url))
    return cached(request, data, etag_of(data), "public, max-age=300", "application/json")
