"""JSON-RPC client for the hot path: raw aiohttp + orjson, built as a small onion.

web3.py's provider/middleware split, reduced to what the indexer needs::

    RpcClient.call/batch
      -> Retry          jittered exponential backoff, Retry-After, a time and attempt budget
      -> InFlightLimit  a semaphore; retries back off *outside* it so sleepers hold no slot
      -> Failover       picks the endpoint; on 5xx/timeout/connection errors cools it down
                        and tries the next one at once
      -> HttpTransport  one POST, one JSON-RPC body, outcome reported to the RpcObserver

Every layer has the same contract (``Handler``): take an ``RpcRequest``, return one outcome
per call in order, where an outcome is the ``result`` value or an ``RpcError`` instance for a
per-item JSON-RPC error. A failure of the whole request is raised instead. Only
``TransientRpcError`` (raised, or as an item) is retried, and only items that failed are
sent again.

URLs are secrets (API keys live in paths, query strings and userinfo): everything that leaves
this module (messages, logs, metrics) uses ``Endpoint.name``, the redacted form.
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import orjson

from dnft.errors import ConfigError, RpcError
from dnft.rpc.errors import (
    RangeTooLargeError,
    RpcGiveUpError,
    RpcHttpError,
    TransientRpcError,
    classify_error,
)
from dnft.rpc.types import JsonValue, Params, RpcObserver

__all__ = [
    "Endpoint",
    "Failover",
    "Handler",
    "HttpTransport",
    "InFlightLimit",
    "Retry",
    "RetryPolicy",
    "RpcClient",
    "RpcRequest",
    "redact_url",
]

log = logging.getLogger(__name__)

_HEADERS: Final = {"Content-Type": "application/json", "Accept": "application/json"}
# A path segment this long, made of token characters and holding a digit, is an API key
# (Alchemy /v2/<key>, Infura /v3/<key>, QuickNode /<token>/).
_KEYLIKE: Final = re.compile(r"(?=[^/]*\d)[A-Za-z0-9_\-]{16,}")


def redact_url(url: str) -> str:
    """Return ``url`` without userinfo, query values or key-like path segments."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
    except ValueError:
        return "<unparseable url>"
    if parts.username or parts.password:
        host = f"***@{host}"
    path = "/".join("***" if _KEYLIKE.fullmatch(seg) else seg for seg in parts.path.split("/"))
    query = "&".join(f"{kv.split('=', 1)[0]}=***" for kv in parts.query.split("&") if kv)
    return urlunsplit((parts.scheme, host, path, query, ""))


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One node URL. ``url`` may hold secrets; ``name`` is the redacted form for humans."""

    url: str
    name: str

    @classmethod
    def of(cls, url: str) -> Endpoint:
        """Raises ``ConfigError`` unless ``url`` is an http(s) URL with a host."""
        name = redact_url(url)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("rpc.urls", f"{name!r} is not an http(s) URL")
        return cls(url=url, name=name)


@dataclass(frozen=True, slots=True)
class RpcRequest:
    """Calls to send together. ``batch`` sends a JSON-RPC array even for a single call."""

    calls: tuple[tuple[str, Params], ...]
    batch: bool

    @property
    def label(self) -> str:
        """Low-cardinality name for metrics and messages."""
        method = self.calls[0][0] if self.calls else "empty"
        return f"batch:{method}" if self.batch else method

    def subset(self, indexes: Sequence[int]) -> RpcRequest:
        return RpcRequest(tuple(self.calls[i] for i in indexes), self.batch)


class Handler(Protocol):
    """One layer of the onion. Returns one outcome per call (value or ``RpcError``)."""

    async def __call__(self, request: RpcRequest) -> list[Any]: ...


# --- transport -------------------------------------------------------------------------------


class HttpTransport:
    """Sends one ``RpcRequest`` to one endpoint as one HTTP POST. Does not retry.

    Raises ``TransientRpcError`` (429, 5xx, timeout, dropped connection, unparseable body,
    a batch answer missing items) and ``RpcHttpError`` (other non-200 statuses without a
    JSON-RPC body); per-item JSON-RPC errors come back as ``RpcError`` outcomes.
    """

    def __init__(
        self,
        session: Callable[[], aiohttp.ClientSession],
        *,
        timeout_s: float,
        observer: RpcObserver | None = None,
    ) -> None:
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._observer = observer
        self._ids = itertools.count(1)

    async def send(self, endpoint: Endpoint, request: RpcRequest) -> list[Any]:
        ids = [next(self._ids) for _ in request.calls]
        bodies = [
            {"jsonrpc": "2.0", "id": id_, "method": method, "params": params}
            for id_, (method, params) in zip(ids, request.calls, strict=True)
        ]
        payload = orjson.dumps(bodies if request.batch else bodies[0])
        label = request.label
        outcome = "cancelled"
        started = time.perf_counter()
        try:
            status, raw, retry_after = await self._post(endpoint, payload, label)
            outcomes, outcome = self._parse(endpoint, request, ids, status, raw, retry_after)
            return outcomes
        except TransientRpcError as exc:
            outcome = exc.kind
            raise
        except RpcHttpError:
            outcome = "http_error"
            raise
        finally:
            if self._observer is not None:
                self._observer.on_request(
                    label, endpoint.name, time.perf_counter() - started, outcome
                )

    async def _post(
        self, endpoint: Endpoint, payload: bytes, label: str
    ) -> tuple[int, bytes, str | None]:
        try:
            async with self._session().post(
                endpoint.url, data=payload, headers=_HEADERS, timeout=self._timeout
            ) as resp:
                raw = await resp.read()
                return resp.status, raw, resp.headers.get("Retry-After")
        # aiohttp's exception texts can echo the full URL (keys included): only the type is
        # kept, and the original is not chained.
        except TimeoutError:
            raise TransientRpcError(
                "request timed out", kind="timeout", method=label, endpoint=endpoint.name
            ) from None
        except aiohttp.ClientError as exc:
            # Connection refused/reset, server disconnect, truncated body.
            raise TransientRpcError(
                f"connection failed ({type(exc).__name__})",
                kind="connection",
                method=label,
                endpoint=endpoint.name,
            ) from None

    def _parse(
        self,
        endpoint: Endpoint,
        request: RpcRequest,
        ids: list[int],
        status: int,
        raw: bytes,
        retry_after: str | None,
    ) -> tuple[list[Any], str]:
        label, where = request.label, endpoint.name
        if status == 429:
            raise TransientRpcError(
                "HTTP 429",
                kind="rate_limited",
                method=label,
                endpoint=where,
                retry_after=_parse_retry_after(retry_after),
            )
        try:
            body: JsonValue = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        is_rpc = isinstance(body, list) or (
            isinstance(body, dict) and ("result" in body or "error" in body)
        )
        if status != 200:
            if status >= 500:
                # A 5xx is a sick endpoint, except when it carries a definite range refusal.
                if isinstance(body, dict) and "error" in body:
                    err = classify_error(body["error"], method=label, endpoint=where)
                    if isinstance(err, RangeTooLargeError):
                        return [err] * len(ids), "node_error"
                raise TransientRpcError(
                    f"HTTP {status}",
                    kind="http_5xx",
                    method=label,
                    endpoint=where,
                    retry_after=_parse_retry_after(retry_after),
                )
            if not is_rpc:
                raise RpcHttpError(status, method=label, endpoint=where)
        if not is_rpc:
            raise TransientRpcError(
                f"unparseable response body ({len(raw)} bytes)",
                kind="bad_response",
                method=label,
                endpoint=where,
            )
        if not request.batch:
            if not isinstance(body, dict):
                raise TransientRpcError(
                    "array answer to a single call",
                    kind="bad_response",
                    method=label,
                    endpoint=where,
                )
            if "error" in body:
                err = classify_error(body["error"], method=label, endpoint=where)
                return [err], _outcome_of(err)
            return [body["result"]], "ok"
        if isinstance(body, dict):
            if "error" in body:  # the whole batch refused (too many items, bad request)
                raise classify_error(body["error"], method=label, endpoint=where)
            raise TransientRpcError(
                "non-array answer to a batch", kind="bad_response", method=label, endpoint=where
            )
        by_id: dict[Any, Any] = {item.get("id"): item for item in body if isinstance(item, dict)}
        outcomes: list[Any] = []
        outcome = "ok"
        for id_, (method, _) in zip(ids, request.calls, strict=True):
            item = by_id.get(id_)
            if item is None:
                # Providers drop items under load; the retry layer re-sends just these.
                outcomes.append(
                    TransientRpcError(
                        "batch answer has no item for this call",
                        kind="bad_response",
                        method=method,
                        endpoint=where,
                    )
                )
                outcome = "bad_response"
            elif "error" in item:
                err = classify_error(item["error"], method=method, endpoint=where)
                outcomes.append(err)
                outcome = _outcome_of(err)
            else:
                outcomes.append(item.get("result"))
        return outcomes, outcome


def _outcome_of(error: RpcError) -> str:
    return error.kind if isinstance(error, TransientRpcError) else "node_error"


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# --- layers ----------------------------------------------------------------------------------


class Failover:
    """Chooses the endpoint: the first healthy one in configured order (primary preferred).

    An endpoint that fails with a failover-kind ``TransientRpcError`` (5xx, timeout,
    connection, garbage body) is cooled down for ``cooldown_s`` and the next endpoint is
    tried at once; each request tries each endpoint at most once. When every endpoint is
    cooling, they are still tried, soonest-to-recover first, so a total outage degrades
    into the retry layer's backoff rather than an instant error. Raises the last error.
    """

    def __init__(
        self,
        transport: HttpTransport,
        endpoints: Sequence[Endpoint],
        *,
        cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not endpoints:
            raise ValueError("at least one endpoint is required")
        self._transport = transport
        self._endpoints = tuple(endpoints)
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._cool_until: dict[Endpoint, float] = {}

    def _order(self) -> list[Endpoint]:
        now = self._clock()
        healthy = [e for e in self._endpoints if self._cool_until.get(e, 0.0) <= now]
        cooling = sorted(
            (e for e in self._endpoints if self._cool_until.get(e, 0.0) > now),
            key=lambda e: self._cool_until[e],
        )
        return healthy + cooling

    async def __call__(self, request: RpcRequest) -> list[Any]:
        last: TransientRpcError | None = None
        for endpoint in self._order():
            try:
                outcomes = await self._transport.send(endpoint, request)
            except TransientRpcError as exc:
                if not exc.failover:
                    raise
                self._cool_until[endpoint] = self._clock() + self._cooldown_s
                if len(self._endpoints) > 1:
                    log.warning("rpc endpoint %s failed (%s); failing over", endpoint.name, exc)
                last = exc
                continue
            self._cool_until.pop(endpoint, None)
            return outcomes
        assert last is not None  # the loop ran at least once (endpoints is non-empty)
        raise last


class InFlightLimit:
    """Caps concurrent requests (a batch counts as one). Blocks until a slot is free."""

    def __init__(self, next_: Handler, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self._next = next_
        self._slots = asyncio.Semaphore(limit)

    async def __call__(self, request: RpcRequest) -> list[Any]:
        async with self._slots:
            return await self._next(request)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When to give up: after ``max_attempts`` sends or when the next wait would end past
    ``budget_s`` from the first send. Waits grow as ``base_delay_s * 2**n`` up to
    ``max_delay_s``, each drawn in [w/2, w] (jitter spreads herds of retrying tasks);
    a Retry-After longer than that is honoured as is."""

    max_attempts: int = 8
    budget_s: float = 60.0
    base_delay_s: float = 0.05
    max_delay_s: float = 5.0


class Retry:
    """Retries ``TransientRpcError``: the whole request when it was raised, else only the
    items that came back transient. Raises ``RpcGiveUpError`` (naming method and redacted
    endpoint, chained to the last error) when the policy's budget is spent; every other
    error passes through untouched."""

    def __init__(
        self,
        next_: Handler,
        policy: RetryPolicy,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._next = next_
        self._policy = policy
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._clock = clock

    def _delay(self, attempt: int, error: TransientRpcError) -> float:
        p = self._policy
        ceiling = min(p.max_delay_s, p.base_delay_s * 2 ** (attempt - 1))
        delay = self._rng.uniform(ceiling / 2, ceiling)
        if error.retry_after is not None:
            delay = max(delay, error.retry_after)
        return delay

    async def __call__(self, request: RpcRequest) -> list[Any]:
        started = self._clock()
        results: list[Any] = [None] * len(request.calls)
        pending = list(range(len(request.calls)))
        current = request
        attempt = 0
        while True:
            attempt += 1
            try:
                outcomes = await self._next(current)
            except TransientRpcError as exc:
                last = exc
            else:
                still: list[int] = []
                transient: TransientRpcError | None = None
                for index, outcome in zip(pending, outcomes, strict=True):
                    if isinstance(outcome, TransientRpcError):
                        still.append(index)
                        transient = outcome
                    else:
                        results[index] = outcome
                if transient is None:
                    return results
                last, pending = transient, still
                current = request.subset(pending)
            delay = self._delay(attempt, last)
            elapsed = self._clock() - started
            if attempt >= self._policy.max_attempts or elapsed + delay > self._policy.budget_s:
                log.warning("rpc %s gave up: %s", request.label, last)
                raise RpcGiveUpError(
                    last.method or request.label, last.endpoint, attempt, elapsed, str(last)
                ) from last
            await self._sleep(delay)


# --- client ----------------------------------------------------------------------------------


class RpcClient:
    """JSON-RPC over HTTP with retry, failover and an in-flight cap. Async only.

    ``urls`` are tried in order (the first is the primary); a malformed one raises
    ``ConfigError`` here. The client owns its ``aiohttp.ClientSession`` unless one is passed
    in; use ``async with`` or ``close()``. Safe to share between tasks of one event loop.
    """

    def __init__(
        self,
        urls: str | Sequence[str],
        *,
        session: aiohttp.ClientSession | None = None,
        timeout_s: float = 10.0,
        max_in_flight: int = 16,
        cooldown_s: float = 30.0,
        retry: RetryPolicy | None = None,
        observer: RpcObserver | None = None,
        rng: random.Random | None = None,
    ) -> None:
        url_list = [urls] if isinstance(urls, str) else list(urls)
        self.endpoints = tuple(Endpoint.of(u) for u in url_list)
        self._session = session
        self._owns_session = session is None
        self._max_in_flight = max_in_flight
        transport = HttpTransport(self._get_session, timeout_s=timeout_s, observer=observer)
        self._handler: Handler = Retry(
            InFlightLimit(
                Failover(transport, self.endpoints, cooldown_s=cooldown_s), max_in_flight
            ),
            retry or RetryPolicy(),
            rng=rng,
        )

    def _get_session(self) -> aiohttp.ClientSession:
        # Created lazily: a ClientSession must be made inside the running event loop.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_in_flight + len(self.endpoints))
            )
        return self._session

    async def call(self, method: str, params: Params | None = None) -> Any:
        """Send one call; return its ``result``.

        Raises ``RpcNodeError``/``RangeTooLargeError`` (node refused), ``RpcHttpError``,
        or ``RpcGiveUpError`` once the retry budget is spent.
        """
        (outcome,) = await self._handler(
            RpcRequest(((method, params if params is not None else []),), batch=False)
        )
        if isinstance(outcome, RpcError):
            raise outcome
        return outcome

    async def batch(
        self, calls: Sequence[tuple[str, Params]], *, return_exceptions: bool = False
    ) -> list[Any]:
        """Send ``calls`` as one JSON-RPC batch; return results in the order of ``calls``.

        Responses are matched by id, whatever order the node sends them in. A per-item
        error is raised (the first one) unless ``return_exceptions``, in which case the
        ``RpcError`` takes that item's place. Items that failed transiently are re-sent.
        """
        if not calls:
            return []
        outcomes = await self._handler(RpcRequest(tuple(calls), batch=True))
        if not return_exceptions:
            for outcome in outcomes:
                if isinstance(outcome, RpcError):
                    raise outcome
        return outcomes

    async def close(self) -> None:
        """Close the session if this client created it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> RpcClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
