"""/curate: the curators' review queue, behind authentication.

Every path under /curate, including ones that do not exist, passes :func:`curate_guard`
first: without valid credentials the answer is 401 (with a challenge), nothing else. Posts
also need a same-origin Origin/Referer and the page's CSRF token (``curate_auth``), unless
made with the bearer token. Decisions are made by ``regenerator.curation.Curator`` and
recorded there (who, when, what); the messages they imply are sent from the outbox right
after, and retried by the outbox loop if that send fails.

Routes:

* ``GET /curate``: the queue: pending versions beside their token's current one, and tokens
  whose current state failed its guardrails on every attempt;
* ``GET /curate/images/{sha256}``: an image a candidate or a version names;
* ``POST /curate/decide``: form fields ``csrf``, ``action`` (approve, reject, reroll) with
  ``id`` repeated, or ``one=ACTION:ID``; ``note``. Answers 303 back to the queue, or JSON
  when the client accepts ``application/json``;
* ``GET /curate/pending``: the pending queue as JSON (``?after=&limit=``).
"""

from __future__ import annotations

import functools
import math
from importlib import resources
from typing import Any
from urllib.parse import quote

from aiohttp import web

from dnft import metrics
from dnft.timeline import ACTIONS
from publisher.api import curate_pages, curate_queries, queries
from publisher.api.caching import etag_of_sha256, image_content_type
from publisher.api.context import Handler, client_of, context, json_response, under_curate
from publisher.api.curate_auth import (
    CSRF_COOKIE,
    CSRF_FIELD,
    Identity,
    LoginThrottledError,
    new_nonce,
    same_origin,
)
from publisher.api.curate_service import CurateContext
from publisher.api.errors import (
    ApiError,
    BadRequestError,
    NotFoundError,
    RateLimitedError,
    UnavailableError,
)
from publisher.api.login_guard import LoginsBusyError
from publisher.api.queries import VersionRow
from publisher.api.routes_api import blob
from publisher.api.timeline import changes, summary, triggers
from publisher.api.validation import parse_cursor, parse_sha256

PREFIX = "/curate"
QUEUE_PAGE = 50
MAX_IDS = 500
MAX_NOTE = 500
_IDENTITY_KEY = web.RequestKey("dnft_curate_identity", Identity)


class UnauthorizedError(ApiError):
    """No or wrong credentials for /curate (401, with a challenge)."""

    status = 401
    code = "unauthorized"


class ForbiddenError(ApiError):
    """A post that may come from another site (403): bad Origin/Referer or CSRF token."""

    status = 403
    code = "forbidden"


def _curate(request: web.Request) -> CurateContext:
    ctx = context(request).curate
    if ctx is None:
        raise NotFoundError("curation is not enabled (api.curate.enabled)")
    return ctx


def identity(request: web.Request) -> Identity:
    return request[_IDENTITY_KEY]


@web.middleware
async def curate_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate every /curate request before anything else sees it."""
    if not under_curate(request.path):
        return await handler(request)
    ctx = _curate(request)
    try:
        who = await ctx.auth.authenticate(request.headers.get("Authorization"), client_of(request))
    except LoginThrottledError as exc:
        metrics.api_curate_logins_refused_total.labels("throttled").inc()
        retry = str(max(1, math.ceil(exc.retry_after_s)))
        raise RateLimitedError(
            f"too many failed logins; retry in {retry} s", headers={"Retry-After": retry}
        ) from None
    except LoginsBusyError:
        metrics.api_curate_logins_refused_total.labels("busy").inc()
        raise UnavailableError(
            "too many logins being checked", headers={"Retry-After": "1"}
        ) from None
    if who is None:
        metrics.api_curate_auth_failures_total.inc()
        raise UnauthorizedError(
            "credentials required for /curate",
            headers={"WWW-Authenticate": ctx.auth.challenge},
        )
    request[_IDENTITY_KEY] = who
    return await handler(request)


def add_routes(app: web.Application) -> None:
    app.router.add_get(PREFIX, queue)
    app.router.add_get(PREFIX + "/pending", pending_json)
    app.router.add_get(PREFIX + "/images/{sha256}", image)
    app.router.add_get(PREFIX + "/static/curate.css", stylesheet)
    app.router.add_post(PREFIX + "/decide", decide)


def _cause(item: curate_queries.QueueItem, ctx_collections: Any, events: Any) -> str:
    bound = ctx_collections.get(item.collection)
    if bound is None:
        return ", ".join(item.triggered_by[:3])
    row = VersionRow(
        token_id=item.token_id,
        version=0,
        state=item.state,
        state_hash="",
        name="",
        image_sha256=item.image_sha256 or "",
        image_cid="",
        metadata_sha256="",
        metadata_cid="",
        image_url="",
        triggered_by=item.triggered_by,
        created_at=item.created_at,
    )
    moved = changes(item.current_state, item.state)
    return summary(
        triggers(row, bound.collection, events, moved),
        max(0, len(item.triggered_by) - 20),
        moved,
        first=item.current_state is None,
    )


async def _with_causes(
    request: web.Request, items: list[curate_queries.QueueItem]
) -> list[tuple[curate_queries.QueueItem, str]]:
    ctx = context(request)
    by_name = {c.collection.name: c for c in ctx.collections}
    out = []
    for item in items:
        events = await queries.events(ctx.pool, item.collection, item.triggered_by[:20])
        out.append((item, _cause(item, by_name, events)))
    return out


async def queue(request: web.Request) -> web.Response:
    """The review queue page; sets the CSRF cookie when the browser has none."""
    ctx = context(request)
    who = identity(request)
    raw_after = request.query.get("after")
    after = parse_cursor(raw_after, "after", 2**63 - 1) if raw_after is not None else 0
    rows = await curate_queries.pending(ctx.pool, after=after, limit=QUEUE_PAGE + 1)
    more = len(rows) > QUEUE_PAGE
    rows = rows[:QUEUE_PAGE]
    failed = await curate_queries.failed(ctx.pool, limit=QUEUE_PAGE)
    nonce = request.cookies.get(CSRF_COOKIE) or new_nonce()
    body = curate_pages.queue_page(
        curator=who.curator,
        csrf=_curate(request).auth.csrf_token(who.curator, nonce),
        notice=request.query.get("done", "")[:300],
        pending=await _with_causes(request, rows),
        failed=await _with_causes(request, failed),
        next_url=f"{PREFIX}?after={rows[-1].id}" if more else None,
    )
    response = web.Response(text=body, content_type="text/html", charset="utf-8")
    if request.cookies.get(CSRF_COOKIE) != nonce:
        response.set_cookie(
            CSRF_COOKIE,
            nonce,
            path=PREFIX,
            httponly=True,
            samesite="Strict",
            secure=request.secure or context(request).settings.public_https,
        )
    return response


def _candidate_json(item: curate_queries.QueueItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "collection": item.collection,
        "token_id": str(item.token_id),
        "status": item.status,
        "seed": item.seed,
        "attempt": item.attempt,
        "image_sha256": item.image_sha256,
        "state": item.state,
        "reasons": item.reasons,
        "triggered_by": item.triggered_by,
        "created_at": item.created_at.isoformat(),
        "current_version": item.current_version,
        "current_image_sha256": item.current_image,
    }


async def pending_json(request: web.Request) -> web.Response:
    """The pending queue as JSON, oldest first."""
    ctx = context(request)
    raw_after = request.query.get("after")
    after = parse_cursor(raw_after, "after", 2**63 - 1) if raw_after is not None else 0
    raw_limit = request.query.get("limit")
    limit = parse_cursor(raw_limit, "limit", 500) if raw_limit is not None else QUEUE_PAGE
    rows = await curate_queries.pending(ctx.pool, after=after, limit=max(1, limit))
    return json_response({"pending": [_candidate_json(r) for r in rows]})


async def image(request: web.Request) -> web.Response:
    """An image some candidate or version names (candidates' images are never public)."""
    ctx = context(request)
    sha256 = parse_sha256(request.match_info["sha256"])
    if not await curate_queries.image_known(ctx.pool, sha256):
        raise NotFoundError(f"no image {sha256}")
    body = await blob(ctx, sha256)
    return web.Response(
        body=body,
        content_type=image_content_type(body),
        headers={"ETag": etag_of_sha256(sha256)},
    )


@functools.cache
def _css() -> bytes:
    return resources.files("publisher.api").joinpath("static", "curate.css").read_bytes()


async def stylesheet(_: web.Request) -> web.Response:
    response = web.Response(body=_css(), content_type="text/css")
    response.charset = "utf-8"
    return response


def _parse_ids(values: list[str]) -> list[int]:
    if len(values) > MAX_IDS:
        raise BadRequestError(f"at most {MAX_IDS} candidates per decision")
    return [parse_cursor(v, "id", 2**63 - 1) for v in values]


def _wants_json(request: web.Request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


async def decide(request: web.Request) -> web.Response:
    """Approve, reject or re-roll candidates (a form post; see the module docstring)."""
    ctx = _curate(request)
    who = identity(request)
    if who.via != "bearer" and not same_origin(
        request.host, request.headers.get("Origin"), request.headers.get("Referer")
    ):
        raise ForbiddenError("cross-site post refused: Origin/Referer is not this server")
    if request.content_length is not None and request.content_length > 64 * 1024:
        raise BadRequestError("form too large")
    form = await request.post()
    if who.via != "bearer" and not ctx.auth.csrf_valid(
        who.curator, request.cookies.get(CSRF_COOKIE), _field(form, CSRF_FIELD)
    ):
        raise ForbiddenError("missing or wrong CSRF token: reload /curate and try again")
    one = _field(form, "one")
    if one:
        action, _, raw_id = one.partition(":")
        ids = _parse_ids([raw_id])
    else:
        action = _field(form, "action") or ""
        ids = _parse_ids([str(v) for v in form.getall("id", [])])
    if action not in ACTIONS:
        raise BadRequestError(f"action must be one of {list(ACTIONS)}")
    if not ids:
        raise BadRequestError("select at least one candidate")
    note = (_field(form, "note") or "")[:MAX_NOTE]
    outcomes = await ctx.curator.decide(action, ids, curator=who.curator, note=note)
    for o in outcomes:
        metrics.curation_decisions_total.labels(o.action, str(o.changed).lower()).inc()
    sent = await ctx.flush() if any(o.changed for o in outcomes) else 0
    if _wants_json(request) or who.via == "bearer":
        return json_response(
            {
                "decisions": [
                    {
                        "candidate": o.candidate_id,
                        "action": o.action,
                        "changed": o.changed,
                        "outcome": o.detail,
                        "version": o.version,
                    }
                    for o in outcomes
                ],
                "sent": sent,
            }
        )
    done = "; ".join(f"#{o.candidate_id}: {o.detail}" for o in outcomes)[:300]
    raise web.HTTPSeeOther(location=f"{PREFIX}?done={quote(done)}")


def _field(form: Any, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None
