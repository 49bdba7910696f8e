"""Publish policy: first, deviation (relative or absolute) and heartbeat, at exact times."""

from __future__ import annotations

from decimal import Decimal

from oracle_feeds.policy import PublishPolicy
from oracle_feeds.types import LastPublished

T0 = 1_700_000_000.0


def last(value: str, published_at: float = T0) -> LastPublished:
    return LastPublished(
        round_id=3, value=Decimal(value), observed_at=T0, published_at=published_at
    )


class TestDeviation:
    """A threshold reached (>=) publishes; below it nothing does."""

    def test_first_reading_always_publishes(self) -> None:
        assert PublishPolicy(relative=Decimal("0.01")).decide(None, Decimal(5), T0) == "first"

    def test_relative(self) -> None:
        p = PublishPolicy(relative=Decimal("0.01"))
        assert p.decide(last("100"), Decimal("100.99"), T0) is None
        assert p.decide(last("100"), Decimal("101"), T0) == "deviation"
        assert p.decide(last("100"), Decimal("99"), T0) == "deviation"
        assert p.decide(last("100"), Decimal("99.01"), T0) is None

    def test_relative_from_negative_and_zero(self) -> None:
        p = PublishPolicy(relative=Decimal("0.1"))
        assert p.decide(last("-10"), Decimal("-11"), T0) == "deviation"
        assert p.decide(last("-10"), Decimal("-10.5"), T0) is None
        assert p.decide(last("0"), Decimal("0.0001"), T0) == "deviation"
        assert p.decide(last("0"), Decimal("0"), T0) is None

    def test_absolute(self) -> None:
        p = PublishPolicy(absolute=Decimal("0.5"))
        assert p.decide(last("20"), Decimal("20.49"), T0) is None
        assert p.decide(last("20"), Decimal("19.5"), T0) == "deviation"

    def test_without_threshold_any_change_publishes(self) -> None:
        p = PublishPolicy()
        assert p.decide(last("20"), Decimal("20.000001"), T0) == "deviation"
        assert p.decide(last("20"), Decimal("20.000"), T0) is None


class TestHeartbeat:
    """Unchanged values publish again once heartbeat_s has passed since the last publish."""

    def test_exactly_at_the_heartbeat(self) -> None:
        p = PublishPolicy(relative=Decimal("0.01"), heartbeat_s=60)
        assert p.decide(last("100", T0), Decimal(100), T0 + 59.999) is None
        assert p.decide(last("100", T0), Decimal(100), T0 + 60) == "heartbeat"
        assert p.heartbeat_due_at(last("100", T0)) == T0 + 60

    def test_deviation_wins_over_heartbeat(self) -> None:
        p = PublishPolicy(relative=Decimal("0.01"), heartbeat_s=60)
        assert p.decide(last("100"), Decimal(200), T0 + 600) == "deviation"

    def test_no_heartbeat_configured(self) -> None:
        p = PublishPolicy(relative=Decimal("0.01"))
        assert p.decide(last("100"), Decimal(100), T0 + 10**9) is None
        assert p.heartbeat_due_at(last("100")) is None
        assert PublishPolicy(heartbeat_s=5).heartbeat_due_at(None) is None
