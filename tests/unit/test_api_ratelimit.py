"""The per-client token bucket (a burst, then a steady rate, with bounded memory); who the
client is behind N trusted proxies; the /curate failed-login throttle and PBKDF2 executor."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

from publisher.api.curate_auth import CurateAuth, LoginThrottledError, hash_password
from publisher.api.forwarded import client_address
from publisher.api.login_guard import FailedLogins, LoginsBusyError, PasswordChecker
from publisher.api.ratelimit import TokenBucketLimiter

T = TypeVar("T")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestTokenBucket:
    """Requests beyond the burst wait for the refill; clients do not share a bucket."""

    def test_burst_then_rate(self) -> None:
        clock = Clock()
        limiter = TokenBucketLimiter(2.0, 3, clock=clock)
        assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
        assert limiter.take("a") == pytest.approx(0.5)
        assert limiter.take("b") == 0.0, "another client has its own bucket"
        clock.now += 0.5
        assert limiter.take("a") == 0.0
        assert limiter.take("a") == pytest.approx(0.5)

    def test_refused_requests_spend_nothing(self) -> None:
        clock = Clock()
        limiter = TokenBucketLimiter(1.0, 1, clock=clock)
        assert limiter.take("a") == 0.0
        for _ in range(10):
            assert limiter.take("a") == pytest.approx(1.0)
        clock.now += 1.0
        assert limiter.take("a") == 0.0, "hammering while refused does not push the wait out"

    def test_refill_caps_at_burst(self) -> None:
        clock = Clock()
        limiter = TokenBucketLimiter(10.0, 2, clock=clock)
        clock.now += 3600
        assert [limiter.take("a") > 0 for _ in range(3)] == [False, False, True]

    def test_memory_is_bounded(self) -> None:
        clock = Clock()
        limiter = TokenBucketLimiter(1.0, 1, max_clients=100, clock=clock)
        for i in range(1000):
            limiter.take(f"10.0.{i // 256}.{i % 256}")
        assert len(limiter) == 100
        assert limiter.take("10.0.3.231") > 0, "the most recent clients are remembered"

    def test_peek_spends_nothing(self) -> None:
        clock = Clock()
        limiter = TokenBucketLimiter(1.0, 2, clock=clock)
        assert limiter.peek("a") == 0.0
        assert [limiter.take("a") for _ in range(2)] == [0.0, 0.0]
        assert limiter.peek("a") == pytest.approx(1.0)
        clock.now += 1.0
        assert limiter.peek("a") == 0.0
        assert limiter.peek("a") == 0.0
        assert limiter.take("a") == 0.0

    def test_bad_parameters(self) -> None:
        with pytest.raises(ValueError, match="rate"):
            TokenBucketLimiter(0, 1)
        with pytest.raises(ValueError, match="burst"):
            TokenBucketLimiter(1, 0)


class TestForwardedFor:
    """``api.trusted_proxies``: 0 ignores X-Forwarded-For; N takes the N-th from the right."""

    PEER = "10.0.0.9"

    @pytest.mark.parametrize(
        ("headers", "proxies", "client"),
        [
            ([], 0, PEER),
            (["203.0.113.7"], 0, PEER),  # no proxy trusted: the header is the client's to forge
            ([], 1, PEER),  # a proxy that set no header
            (["203.0.113.7"], 1, "203.0.113.7"),
            (["1.1.1.1, 203.0.113.7"], 1, "203.0.113.7"),  # the left entry is forged
            (["1.1.1.1, 203.0.113.7, 10.0.0.2"], 2, "203.0.113.7"),
            (["203.0.113.7", "10.0.0.2"], 2, "203.0.113.7"),  # one header per proxy
            (["203.0.113.7"], 2, "203.0.113.7"),  # fewer entries than proxies: the leftmost
            (["2001:db8::1, 10.0.0.2"], 2, "2001:db8::1"),
            (["[2001:db8::1]:4711"], 1, "2001:db8::1"),
            (["203.0.113.7:4711"], 1, "203.0.113.7"),
            ([" 203.0.113.7 "], 1, "203.0.113.7"),
            (["garbage"], 1, PEER),
            (["1.1.1.1, unknown"], 1, PEER),
            (["1.1.1.1, 999.1.1.1"], 1, PEER),
            (["1.1.1.1,"], 1, PEER),  # an empty entry where the client should be
            (["<script>, 203.0.113.7"], 1, "203.0.113.7"),
        ],
    )
    def test_client(self, headers: list[str], proxies: int, client: str) -> None:
        assert client_address(self.PEER, headers, proxies) == client

    def test_spoofed_long_header(self) -> None:
        forged = ", ".join(f"6.6.{i // 256}.{i % 256}" for i in range(2000))  # ~20 KB forged
        header = f"{forged}, 203.0.113.7, 10.0.0.2"
        started = time.perf_counter()
        for _ in range(1000):
            assert client_address(self.PEER, [header], 2) == "203.0.113.7"
        assert time.perf_counter() - started < 1.0  # split at most N times: O(N) per request
        assert client_address(self.PEER, [header + "x" * 100_000], 1) == self.PEER

    def test_no_peer(self) -> None:
        assert client_address(None, [], 0) == "unknown"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class TestLoginThrottle:
    """Failed /curate logins are throttled per client and overall, before any PBKDF2 run;
    PBKDF2 runs on threads of its own with a bounded queue."""

    def test_failed_logins_per_client_and_global(self) -> None:
        clock = Clock()
        failures = FailedLogins(burst=2, per_client_per_min=6, global_per_min=3, clock=clock)
        assert failures.wait("a") == 0.0
        failures.failed("a")
        failures.failed("a")
        assert failures.wait("a") == pytest.approx(10.0)  # one more every 10 s
        assert failures.wait("b") == 0.0
        failures.failed("b")
        assert failures.wait("c") == pytest.approx(20.0), "everybody's budget is spent"
        clock.now += 20.0
        assert failures.wait("a") == 0.0
        assert failures.wait("c") == 0.0

    async def test_throttled_client_costs_no_pbkdf2(self) -> None:
        runs: list[str] = []

        class Counting(PasswordChecker):
            async def run(self, check: Callable[[], T]) -> T:
                runs.append("run")
                return await super().run(check)

        auth = CurateAuth(
            token=None,
            token_curator="bot",
            users={"ann": hash_password("pw", iterations=1000)},
            checker=Counting(threads=1, queue=0),
            failures=FailedLogins(burst=3, per_client_per_min=1, global_per_min=1000),
        )
        assert (await auth.authenticate(basic("ann", "pw"), "1.1.1.1")) is not None
        for _ in range(3):
            assert await auth.authenticate(basic("ann", "guess"), "6.6.6.6") is None
        assert len(runs) == 4
        with pytest.raises(LoginThrottledError) as info:
            await auth.authenticate(basic("ann", "guess"), "6.6.6.6")
        assert info.value.retry_after_s == pytest.approx(60.0, abs=1)
        with pytest.raises(LoginThrottledError):  # the right password too: unknown yet
            await auth.authenticate(basic("ann", "pw2"), "6.6.6.6")
        assert len(runs) == 4, "no PBKDF2 run for a throttled client"
        # Another client, and remembered credentials, are not slowed.
        assert (await auth.authenticate(basic("ann", "pw"), "6.6.6.6")) is not None
        assert (await auth.authenticate(basic("ann", "pw"), "7.7.7.7")) is not None
        assert len(runs) == 4
        auth.close()

    async def test_pbkdf2_runs_on_its_own_threads(self) -> None:
        checker = PasswordChecker(threads=1, queue=0)
        name = await checker.run(lambda: threading.current_thread().name)
        assert name.startswith("dnft-pbkdf2")
        checker.close()

    async def test_full_queue_is_refused_at_once(self) -> None:
        checker = PasswordChecker(threads=1, queue=1)
        release = threading.Event()
        first = asyncio.create_task(checker.run(release.wait))
        second = asyncio.create_task(checker.run(release.wait))
        await asyncio.sleep(0.05)
        assert checker.admitted == 2
        with pytest.raises(LoginsBusyError):
            await checker.run(lambda: True)
        release.set()
        assert await first
        assert await second
        assert checker.admitted == 0
        assert await checker.run(lambda: 7) == 7
        checker.close()
