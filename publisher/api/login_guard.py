"""What a failed /curate login may cost: a throttle per client and overall, and a small
executor of its own for the PBKDF2 runs.

* :class:`FailedLogins` counts failures in token buckets, one per client address (bounded
  LRU) and one for everybody: a client with no token left, or everybody with none, is refused
  before any PBKDF2 run (429, Retry-After) until a token refills. Only failures spend tokens,
  so curators who type their password right are never slowed by the per-client bucket, and
  credentials verified once are remembered (``curate_auth``) and skip both.
* :class:`PasswordChecker` runs PBKDF2 on ``threads`` threads of its own (not the default
  executor, which serves images and DNS) with at most ``queue`` checks waiting; beyond that a
  check is refused at once (503) instead of piling up.

Synchronous, O(1) bookkeeping on the event loop; the clock is injectable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from publisher.api.ratelimit import TokenBucketLimiter

T = TypeVar("T")


class LoginsBusyError(Exception):
    """Too many password checks are running or waiting (answered 503)."""


class FailedLogins:
    """Failed-login budgets: ``burst`` per client, refilled at ``per_client_per_min``; and
    ``global_per_min`` for all clients together (a minute's worth at once)."""

    def __init__(
        self,
        *,
        burst: int,
        per_client_per_min: float,
        global_per_min: float,
        max_clients: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clients = TokenBucketLimiter(
            per_client_per_min / 60.0, burst, max_clients=max_clients, clock=clock
        )
        self._everybody = TokenBucketLimiter(
            global_per_min / 60.0, max(1, int(global_per_min)), max_clients=1, clock=clock
        )

    def wait(self, client: str) -> float:
        """0.0 when ``client`` may try a password now, else the seconds until it may."""
        return max(self._clients.peek(client), self._everybody.peek(""))

    def failed(self, client: str) -> None:
        """Spend a token of ``client`` and of everybody."""
        self._clients.take(client)
        self._everybody.take("")


class PasswordChecker:
    """Runs blocking password checks on its own threads, at most ``threads + queue`` at once."""

    def __init__(self, *, threads: int, queue: int) -> None:
        if threads < 1 or queue < 0:
            raise ValueError("threads must be >= 1 and queue >= 0")
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="dnft-pbkdf2")
        self._capacity = threads + queue
        self._admitted = 0

    @property
    def admitted(self) -> int:
        """Checks running or waiting now."""
        return self._admitted

    async def run(self, check: Callable[[], T]) -> T:
        """``check()`` on a checker thread. Raises LoginsBusyError when full."""
        if self._admitted >= self._capacity:
            raise LoginsBusyError(f"{self._capacity} password checks already running or queued")
        self._admitted += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, check)
        finally:
            self._admitted -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
