"""HTTP JSON feeds: one guarded GET per read, the value (and timestamp) found by path.

A read is bounded in every direction: a total timeout over the whole exchange (connect,
same-host redirects, headers, body), a body cap enforced while streaming (the body is never
read whole before the check), no redirects off the configured host, and addresses checked by
:mod:`oracle_feeds.guard`. The sha256 of the exact body bytes goes into the observation.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any, Final
from urllib.parse import urljoin

import aiohttp

from dnft import metrics
from dnft.config import HttpFeedSettings
from dnft.jsonpath import PathNotFoundError, parse_path, resolve
from dnft.rpc import redact_url
from oracle_feeds.guard import HostGuard, parse_retry_after
from oracle_feeds.parse import parse_json, parse_timestamp, to_decimal
from oracle_feeds.types import Clock, Reading, SourceObservation, SystemClock
from oracle_feeds.validate import Rejected

MAX_REDIRECTS: Final = 3
_REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
_CHUNK: Final = 16 * 1024
# Bodies above this are parsed in a thread: checking and parsing take up to ~0.2 ms per KB.
_PARSE_INLINE_MAX: Final = 16 * 1024
_HEADERS: Final = {"Accept": "application/json", "User-Agent": "dnft-oracle"}


class HttpFeed:
    """Implements ``oracle_feeds.types.Feed`` for ``kind: http``."""

    def __init__(self, settings: HttpFeedSettings, *, clock: Clock | None = None) -> None:
        self._settings = settings
        self._clock = clock or SystemClock()
        self._value_steps = parse_path(settings.value_path)
        self._time_steps = (
            parse_path(settings.timestamp_path) if settings.timestamp_path is not None else None
        )
        self._guard = HostGuard(settings.url, allow_private=settings.allow_private_hosts)
        self._headers = {**_HEADERS, **settings.headers}
        self._session: aiohttp.ClientSession | None = None

    @property
    def id(self) -> str:
        return self._settings.id

    def _get_session(self) -> aiohttp.ClientSession:
        # Made lazily, inside the running loop. One per feed: the guard is per feed.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=self._guard.resolver(), limit=2),
                timeout=aiohttp.ClientTimeout(total=self._settings.timeout_s),
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,  # no proxies from the environment
            )
        return self._session

    async def read(self) -> Reading:
        """GET, check, parse. Raises ``Rejected`` (see ``oracle_feeds.validate``)."""
        timeout_s = self._settings.timeout_s
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout_s):
                body = await self._fetch()
        except TimeoutError:
            raise Rejected("timeout", f"no complete answer within {timeout_s:g} s") from None
        finally:
            metrics.oracle_request_seconds.labels(self.id).observe(time.perf_counter() - started)
        received_at = self._clock.now()
        sha256 = hashlib.sha256(body).hexdigest()
        if len(body) > _PARSE_INLINE_MAX:
            document = await asyncio.to_thread(parse_json, body)
        else:
            document = parse_json(body)
        value = to_decimal(self._find(document, self._value_steps, "value"))
        observed_at = received_at
        if self._time_steps is not None:
            observed_at = parse_timestamp(self._find(document, self._time_steps, "timestamp"))
        source = SourceObservation(
            source=self.id, value=value, response_sha256=sha256, observed_at=observed_at
        )
        return Reading(self.id, value, observed_at, (source,))

    async def _fetch(self) -> bytes:
        session = self._get_session()
        self._guard.check_literal()
        url = self._settings.url
        for _ in range(MAX_REDIRECTS + 1):
            try:
                async with session.get(url, headers=self._headers, allow_redirects=False) as resp:
                    if resp.status in _REDIRECT_STATUSES:
                        url = self._redirect_target(url, resp.headers.get("Location"))
                        continue
                    if resp.status == 429:
                        wait = parse_retry_after(resp.headers.get("Retry-After"), self._clock.now())
                        raise Rejected(
                            "rate_limited",
                            "HTTP 429" + (f", Retry-After {wait:g} s" if wait is not None else ""),
                            retry_after_s=wait,
                        )
                    if resp.status != 200:
                        reason = f" {resp.reason}" if resp.reason else ""
                        raise Rejected("http_status", f"HTTP {resp.status}{reason}")
                    return await _read_capped(resp, self._settings.max_body_bytes)
            except TimeoutError:  # aiohttp's own timeouts are TimeoutErrors too
                raise Rejected(
                    "timeout", f"no complete answer within {self._settings.timeout_s:g} s"
                ) from None
            except aiohttp.ClientError as exc:
                # aiohttp's texts can carry the URL (keys in query strings): type only.
                raise Rejected(
                    "connection", f"{type(exc).__name__} fetching {redact_url(url)}"
                ) from None
        raise Rejected("redirect", f"more than {MAX_REDIRECTS} redirects")

    def _redirect_target(self, url: str, location: str | None) -> str:
        if not location:
            raise Rejected("http_status", "redirect without a Location header")
        try:
            target = urljoin(url, location)
        except ValueError:
            raise Rejected("redirect", f"unreadable Location {location[:60]!r}") from None
        if not self._guard.same_origin(target):
            raise Rejected("redirect", f"redirect to another host: {redact_url(target)}")
        return target

    @staticmethod
    def _find(document: Any, steps: tuple[str | int, ...], what: str) -> Any:
        try:
            return resolve(document, steps)
        except PathNotFoundError as exc:
            raise Rejected("malformed", f"no {what} in the document: {exc}") from None

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


async def _read_capped(resp: aiohttp.ClientResponse, cap: int) -> bytes:
    """The body, refused as ``too_large`` as soon as it passes ``cap`` bytes (decoded)."""
    if resp.content_length is not None and resp.content_length > cap:
        raise Rejected("too_large", f"Content-Length {resp.content_length} over {cap} bytes")
    body = bytearray()
    async for chunk in resp.content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > cap:
            raise Rejected("too_large", f"body passed {cap} bytes")
    return bytes(body)
