"""One JSON-RPC request over HTTP: the onion's innermost layer and the request shapes.

``HttpTransport`` sends one ``RpcRequest`` to one ``Endpoint`` as one POST and turns the answer
into one outcome per call (the ``result`` value, or an ``RpcError`` for a per-item JSON-RPC
error); a failure of the whole request is raised. It never retries: the layers above do.

URLs are secrets (API keys live in paths, query strings and userinfo): everything that leaves
this module (messages, logs, metrics) uses ``Endpoint.name``, the redacted form.
"""

from __future__ import annotations

import email.utils
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

import aiohttp
import orjson

from dnft.errors import ConfigError, RpcError
from dnft.rpc.errors import (
    RangeTooLargeError,
    ResponseTooLargeError,
    RpcHttpError,
    TransientRpcError,
    classify_error,
)
from dnft.rpc.redact import redact_url
from dnft.rpc.types import JsonValue, Params, RpcObserver

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "Endpoint",
    "Handler",
    "HttpTransport",
    "RpcRequest",
    "redact_url",
]

_HEADERS: Final = {"Content-Type": "application/json", "Accept": "application/json"}
# eth_getLogs of a full default chunk (2,000 blocks) on a busy contract stays well below this;
# a node (or something posing as one) cannot make a reader buffer more.
DEFAULT_MAX_RESPONSE_BYTES: Final = 32 * 1024 * 1024
_READ_CHUNK: Final = 64 * 1024


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


class HttpTransport:
    """Sends one ``RpcRequest`` to one endpoint as one HTTP POST. Does not retry.

    Raises ``TransientRpcError`` (429, 5xx, timeout, dropped connection, unparseable body,
    a batch answer missing items) and ``RpcHttpError`` (other non-200 statuses without a
    JSON-RPC body); per-item JSON-RPC errors come back as ``RpcError`` outcomes.

    A body longer than ``max_response_bytes`` is not read further (the stream is cut while
    it arrives): a single ``eth_getLogs`` then comes back as a ``ResponseTooLargeError``
    outcome, a range refusal that ``iter_logs`` splits; any other request raises it.
    """

    def __init__(
        self,
        session: Callable[[], aiohttp.ClientSession],
        *,
        timeout_s: float,
        observer: RpcObserver | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        if max_response_bytes < 1:
            raise ValueError("max_response_bytes must be >= 1")
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_bytes = max_response_bytes
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
        except ResponseTooLargeError as exc:
            outcome = "too_large"
            if not request.batch and request.calls[0][0] == "eth_getLogs":
                return [exc]
            raise
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
                raw = await self._read_capped(resp, endpoint, label)
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

    async def _read_capped(
        self, resp: aiohttp.ClientResponse, endpoint: Endpoint, label: str
    ) -> bytes:
        """The body, read while it arrives; ``ResponseTooLargeError`` once past the cap (the
        rest is never read: leaving the context closes the connection)."""
        limit = self._max_bytes
        if resp.content_length is not None and resp.content_length > limit:
            raise ResponseTooLargeError(limit, method=label, endpoint=endpoint.name)
        body = bytearray()
        async for chunk in resp.content.iter_chunked(_READ_CHUNK):
            body += chunk
            if len(body) > limit:
                raise ResponseTooLargeError(limit, method=label, endpoint=endpoint.name)
        return bytes(body)

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
