"""Median feeds: the median of agreeing fresh sources, a quorum, and who agreed."""

from __future__ import annotations

from decimal import Decimal

import pytest

from dnft.config import MedianFeedSettings
from oracle_feeds.median import MedianFeed, agreement, median
from oracle_feeds.types import Reading, SourceObservation
from oracle_feeds.validate import Rejected

NOW = 1_700_000_000.0


class Clock:
    def __init__(self, now: float) -> None:
        self.t = now

    def now(self) -> float:
        return self.t


def d(*values: str) -> list[Decimal]:
    return [Decimal(v) for v in values]


class TestMedian:
    """Odd counts take the middle value, even counts the mean of the middle two."""

    def test_values(self) -> None:
        assert median(d("3", "1", "2")) == Decimal(2)
        assert median(d("1", "2", "3", "100")) == Decimal("2.5")
        assert median(d("7")) == Decimal(7)
        with pytest.raises(ValueError, match="no values"):
            median([])

    def test_two_of_three_with_a_spike(self) -> None:
        values = dict(zip("abc", d("100", "101", "100000"), strict=True))
        value, agreed = agreement(values, Decimal("0.02"), 2)
        assert (value, agreed) == (Decimal("100.5"), frozenset("ab"))

    def test_no_quorum_when_sources_disagree(self) -> None:
        values = dict(zip("abc", d("100", "200", "400"), strict=True))
        with pytest.raises(Rejected, match="1 of 3 source") as info:
            agreement(values, Decimal("0.01"), 2)
        assert info.value.reason == "no_quorum"

    def test_no_quorum_with_too_few_sources(self) -> None:
        with pytest.raises(Rejected, match="1 fresh source"):
            agreement({"a": Decimal(1)}, Decimal("0.01"), 2)


class TestMedianFeed:
    """Only fresh sources count; each is recorded with its hash and whether it agreed."""

    def make(self, latest: dict[str, Reading], clock: Clock) -> MedianFeed:
        settings = MedianFeedSettings(
            kind="median",
            id="m",
            sources=["a", "b", "c"],
            quorum=2,
            tolerance=Decimal("0.01"),
            max_age_s=30,
        )
        return MedianFeed(settings, latest.get, clock=clock)

    @staticmethod
    def source(name: str, value: str, at: float) -> Reading:
        v = Decimal(value)
        return Reading(name, v, at, (SourceObservation(name, v, name * 64, at),))

    async def test_reading(self) -> None:
        latest = {
            "a": self.source("a", "100", NOW - 5),
            "b": self.source("b", "100.5", NOW - 1),
            "c": self.source("c", "150", NOW),
        }
        r = await self.make(latest, Clock(NOW)).read()
        assert (r.value, r.observed_at, r.confirmed) == (Decimal("100.25"), NOW, True)
        assert [(s.source, s.agreed, s.response_sha256[:1]) for s in r.sources] == [
            ("a", True, "a"),
            ("b", True, "b"),
            ("c", False, "c"),
        ]

    async def test_stale_sources_do_not_count(self) -> None:
        latest = {"a": self.source("a", "100", NOW - 31), "b": self.source("b", "100", NOW)}
        with pytest.raises(Rejected, match="1 fresh source") as info:
            await self.make(latest, Clock(NOW)).read()
        assert info.value.reason == "no_quorum"
