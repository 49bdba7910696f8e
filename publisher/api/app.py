"""The aiohttp Application of ``dnft api``: routes, and the middlewares every request passes.

Middlewares, outermost first:

1. ``observe``: counts every answer by route template and status, and times it;
2. ``headers``: security headers on every response (a strict Content-Security-Policy on
   HTML; nosniff; CORS for the read-only JSON and images marketplaces fetch from browsers);
3. ``errors``: every error, ours or aiohttp's (404 no route, 405 method), becomes JSON
   ``{"error": code, "message": text}``; an unexpected exception is logged and answered 500
   without its details;
4. ``rate_limit``: a per-client token bucket; over budget is 429 with Retry-After.

5. ``curate_guard`` (``routes_curate``): every path under /curate needs credentials.

Only GET (and HEAD) routes exist outside /curate, so any other method is 405 there: the
public API is read-only. /curate (when enabled) takes form posts from curators.
"""

from __future__ import annotations

import math
import secrets
import time

import structlog
from aiohttp import web

from dnft import metrics
from publisher.api import routes_api, routes_curate, routes_gallery
from publisher.api.context import (
    CONTEXT,
    ApiContext,
    Handler,
    client_of,
    context,
    json_response,
    under_curate,
)
from publisher.api.errors import ApiError, RateLimitedError
from publisher.api.security import hsts_of, set_security_headers

log = structlog.get_logger("dnft.api")


def _route(request: web.Request) -> str:
    """The matched route's template (a bounded label set), or ``unmatched``."""
    info = request.match_info
    resource = info.route.resource if info.http_exception is None else None
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        route = _route(request)
        metrics.api_requests_total.labels(route, str(status)).inc()
        metrics.api_request_seconds.labels(route).observe(time.perf_counter() - started)


@web.middleware
async def headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if not response.prepared:  # a live stream set its headers before it started
        set_security_headers(
            response, private=under_curate(request.path), hsts=hsts_of(context(request).settings)
        )
    return response


def error_response(status: int, code: str, message: str, hdrs: dict[str, str]) -> web.Response:
    return json_response({"error": code, "message": message}, status=status, headers=hdrs)


# What a 5xx body says: nothing of the cause (storage and database errors name hosts,
# buckets, paths), only a request id to find the detail in the log.
_SERVER_ERROR_TEXT = {503: "service unavailable; retry later", 500: "internal error"}


def server_error(
    request: web.Request, status: int, code: str, detail: str, hdrs: dict[str, str]
) -> web.Response:
    """A 5xx with a generic body and a request id; ``detail`` goes to the log only."""
    request_id = secrets.token_hex(8)
    log.warning(
        "request not served",
        status=status,
        code=code,
        detail=detail[:500],
        request_id=request_id,
        path=request.path[:200],
        method=request.method,
    )
    metrics.api_unavailable_total.labels(code).inc()
    body = {
        "error": code,
        "message": _SERVER_ERROR_TEXT.get(status, "server error"),
        "request_id": request_id,
    }
    return json_response(body, status=status, headers={**hdrs, "X-Request-Id": request_id})


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        if exc.status >= 500:
            return server_error(request, exc.status, exc.code, exc.message, exc.headers)
        return error_response(exc.status, exc.code, exc.message, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # 304 and redirects are answers, not errors
        hdrs = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "http_error")
        message = exc.reason
        if exc.status == 405:
            message = "the API is read-only: use GET or HEAD"
        return error_response(exc.status, code, message, hdrs)
    except Exception as exc:
        log.exception("request failed", path=request.path[:200], method=request.method)
        return server_error(request, 500, "internal_error", type(exc).__name__, {})


@web.middleware
async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    ctx = context(request)
    wait = ctx.limiter.take(client_of(request))
    if wait > 0:
        metrics.api_rate_limited_total.inc()
        retry = str(max(1, math.ceil(wait)))
        raise RateLimitedError(
            f"too many requests from this client; retry in {retry} s",
            headers={"Retry-After": retry},
        )
    return await handler(request)


def build_app(ctx: ApiContext) -> web.Application:
    """The application with every route; ``ctx`` must be started (pool open, feed listening).
    Shutting the application down closes every live stream."""
    app = web.Application(
        middlewares=[observe, headers, errors, rate_limit, routes_curate.curate_guard]
    )
    app[CONTEXT] = ctx
    routes_api.add_routes(app)
    routes_gallery.add_routes(app)
    if ctx.curate is not None:
        routes_curate.add_routes(app)

    async def close_streams(_: web.Application) -> None:
        await ctx.live.close()

    app.on_shutdown.append(close_streams)
    return app
