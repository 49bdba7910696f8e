"""The per-client token bucket: a burst, then a steady rate, with bounded memory."""

from __future__ import annotations

import pytest

from publisher.api.ratelimit import TokenBucketLimiter


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

    def test_bad_parameters(self) -> None:
        with pytest.raises(ValueError, match="rate"):
            TokenBucketLimiter(0, 1)
        with pytest.raises(ValueError, match="burst"):
            TokenBucketLimiter(1, 0)
