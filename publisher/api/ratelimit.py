"""A per-client token bucket: ``burst`` requests at once, refilled at ``rate`` per second.

Memory is bounded: at most ``max_clients`` buckets are kept, the least recently seen dropped
first (a dropped client starts again with a full bucket, which only ever errs towards serving).
Pure and synchronous (called on the event loop, O(1) per request); the clock is injectable.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class TokenBucketLimiter:
    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_clients: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1 or max_clients < 1:
            raise ValueError("rate must be > 0, burst and max_clients >= 1")
        self.rate = rate
        self.burst = float(burst)
        self.max_clients = max_clients
        self._clock = clock
        # client -> (tokens left, time they were counted)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def peek(self, client: str) -> float:
        """Like :meth:`take` without spending: 0.0 when a token is there, else the seconds
        until one will be."""
        entry = self._buckets.get(client)
        if entry is None:
            return 0.0
        tokens, since = entry
        tokens = min(self.burst, tokens + (self._clock() - since) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def take(self, client: str) -> float:
        """Spend one token of ``client``'s bucket. Returns 0.0 when the request may go ahead,
        otherwise the seconds until a token will be there (nothing is spent then)."""
        now = self._clock()
        tokens, since = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - since) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait
