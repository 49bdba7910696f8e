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
per-item JSON-RPC error. A failure of the whole request is raised instead. The layers live in
``dnft.rpc.layers``, the transport in ``dnft.rpc.transport``; this module stacks them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import aiohttp

from dnft.errors import RpcError
from dnft.rpc.layers import Failover, InFlightLimit, Retry, RetryPolicy
from dnft.rpc.transport import (
    DEFAULT_MAX_RESPONSE_BYTES,
    Endpoint,
    Handler,
    HttpTransport,
    RpcRequest,
)
from dnft.rpc.types import Params, RpcObserver


class RpcClient:
    """JSON-RPC over HTTP with retry, failover and an in-flight cap. Async only.

    ``urls`` are tried in order (the first is the primary); a malformed one raises
    ``ConfigError`` here. The client owns its ``aiohttp.ClientSession`` unless one is passed
    in; use ``async with`` or ``close()``. Safe to share between tasks of one event loop.
    A response body longer than ``max_response_bytes`` (``networks[].max_response_bytes``)
    is cut off while it arrives: see ``ResponseTooLargeError``.
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
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        url_list = [urls] if isinstance(urls, str) else list(urls)
        self.endpoints = tuple(Endpoint.of(u) for u in url_list)
        self._session = session
        self._owns_session = session is None
        self._max_in_flight = max_in_flight
        transport = HttpTransport(
            self._get_session,
            timeout_s=timeout_s,
            observer=observer,
            max_response_bytes=max_response_bytes,
        )
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
