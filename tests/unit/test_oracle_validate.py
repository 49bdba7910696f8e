"""History-dependent checks: bounds, staleness, order, and jumps held for confirmation."""

from __future__ import annotations

from decimal import Decimal

import pytest

from oracle_feeds.types import Reading, SourceObservation
from oracle_feeds.validate import REJECT_REASONS, Limits, Rejected, Validator

NOW = 1_700_000_000.0


def reading(value: str, observed_at: float = NOW, *, confirmed: bool = False) -> Reading:
    v = Decimal(value)
    source = SourceObservation("s", v, "0" * 64, observed_at)
    return Reading("feed", v, observed_at, (source,), confirmed=confirmed)


def refused(validator: Validator, r: Reading, now: float = NOW) -> str:
    with pytest.raises(Rejected) as info:
        validator.check(r, now)
    return info.value.reason


class TestBoundsAndTime:
    """Values outside [min, max] and readings too old, too new or out of order are refused."""

    def test_bounds_are_inclusive(self) -> None:
        v = Validator(Limits(min=Decimal(0), max=Decimal(10)))
        v.check(reading("0"), NOW)
        v.check(reading("10"), NOW)
        assert refused(v, reading("-5")) == "out_of_bounds"
        assert refused(v, reading("10.0001")) == "out_of_bounds"
        assert v.reference == Decimal(10), "a refusal keeps the last good value"

    def test_non_finite(self) -> None:
        assert refused(Validator(Limits()), reading("NaN")) == "not_finite"

    def test_stale(self) -> None:
        v = Validator(Limits(max_age_s=60))
        v.check(reading("1", NOW - 60), NOW)
        assert refused(v, reading("1", NOW - 61)) == "stale"

    def test_future_beyond_skew(self) -> None:
        v = Validator(Limits())
        v.check(reading("1", NOW + 59), NOW)
        assert refused(v, reading("1", NOW + 61)) == "bad_timestamp"

    def test_older_than_last_accepted(self) -> None:
        v = Validator(Limits())
        v.check(reading("1", NOW), NOW)
        v.check(reading("2", NOW), NOW)  # the same time again is fine
        assert refused(v, reading("3", NOW - 1)) == "stale"


class TestJumps:
    """A move beyond max_change needs a second reading (or a quorum) to be accepted."""

    def test_spike_is_held_then_dropped(self) -> None:
        v = Validator(Limits(max_change=Decimal("0.5")), reference=Decimal(100))
        assert refused(v, reading("100000")) == "jump"
        v.check(reading("101"), NOW)  # back to normal: the spike is forgotten
        assert v.held is None
        assert refused(v, reading("100000")) == "jump"

    def test_second_reading_confirms(self) -> None:
        v = Validator(Limits(max_change=Decimal("0.5")), reference=Decimal(100))
        assert refused(v, reading("300")) == "jump"
        v.check(reading("310"), NOW)
        assert v.reference == Decimal(310)

    def test_second_reading_must_agree_with_the_first(self) -> None:
        v = Validator(Limits(max_change=Decimal("0.1")), reference=Decimal(100))
        assert refused(v, reading("300")) == "jump"
        assert refused(v, reading("500")) == "jump", "500 is no confirmation of 300"
        v.check(reading("520"), NOW)

    def test_boundary_is_allowed(self) -> None:
        v = Validator(Limits(max_change=Decimal("0.5")), reference=Decimal(100))
        v.check(reading("150"), NOW)

    def test_quorum_confirms_at_once(self) -> None:
        v = Validator(Limits(max_change=Decimal("0.1")), reference=Decimal(100))
        v.check(reading("1000", confirmed=True), NOW)

    def test_from_zero_any_move_is_a_jump(self) -> None:
        v = Validator(Limits(max_change=Decimal("0.5")), reference=Decimal(0))
        assert refused(v, reading("1")) == "jump"

    def test_first_reading_has_no_reference(self) -> None:
        Validator(Limits(max_change=Decimal("0.01"))).check(reading("12345"), NOW)


def test_reasons_are_a_closed_set() -> None:
    """The metric's outcome label takes these values and 'accepted', nothing else."""
    assert len(REJECT_REASONS) == len(set(REJECT_REASONS))
    assert "accepted" not in REJECT_REASONS
    assert all(reason.islower() and " " not in reason for reason in REJECT_REASONS)
