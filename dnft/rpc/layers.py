"""The onion's middle layers, each a ``Handler`` wrapping the next: retry, in-flight cap and
failover (``dnft.rpc.client`` stacks them over ``HttpTransport``).

Only ``TransientRpcError`` (raised, or as an item) is retried, and only items that failed
are sent again; every other error passes through untouched.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dnft.rpc.errors import RpcGiveUpError, TransientRpcError
from dnft.rpc.transport import Endpoint, Handler, HttpTransport, RpcRequest

__all__ = ["Failover", "InFlightLimit", "Retry", "RetryPolicy"]

# The client's logger: these layers were part of it, and operators filter on this name.
log = logging.getLogger("dnft.rpc.client")


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
        self._rng = rng or random.Random()  # noqa: S311 (retry jitter, not a secret)
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
