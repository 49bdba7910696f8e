"""The load benchmark's pass/fail arithmetic (bench/load_criteria.py)."""

from __future__ import annotations

import math

import pytest

from bench.load_criteria import block_rate, bounded, counter_rate, growth, thirds_means


def series(values: list[float], every: float = 2.0) -> list[tuple[float, float]]:
    return [(i * every, v) for i, v in enumerate(values)]


class TestThirds:
    """The first and last thirds of a series are compared by their means."""

    def test_means_of_first_and_last_third(self) -> None:
        assert thirds_means([1, 2, 3, 10, 20, 30, 100, 200, 300]) == (2.0, 200.0)

    def test_short_thirds_keep_at_least_one_value(self) -> None:
        assert thirds_means([1, 5, 9, 11]) == (1.0, 11.0)

    def test_fewer_than_three_values_is_refused(self) -> None:
        with pytest.raises(ValueError, match="at least 3"):
            thirds_means([1, 2])


class TestBounded:
    """A lag is bounded when its maximum is within the bound and it is not growing."""

    def test_flat_noisy_lag_under_its_bound_passes(self) -> None:
        v = bounded(
            "lag", "blocks", series([1, 2, 1, 3, 1, 2, 2, 1, 3]), warmup_end=0, bound=5, margin=1
        )
        assert v.ok
        assert v.maximum == 3
        assert v.samples == 9

    def test_a_spike_over_the_bound_fails(self) -> None:
        v = bounded("lag", "blocks", series([1, 1, 9, 1, 1, 1]), warmup_end=0, bound=5, margin=1)
        assert not v.ok
        assert v.maximum == 9

    def test_a_growing_lag_fails_even_under_its_bound(self) -> None:
        v = bounded("lag", "msgs", series([0, 1, 2, 3, 4, 5]), warmup_end=0, bound=10, margin=2)
        assert v.growth == 4.0
        assert not v.ok

    def test_samples_during_warm_up_do_not_count(self) -> None:
        data = series([50, 40, 30, 1, 1, 1])  # t = 0, 2, 4 are warm-up
        assert bounded("lag", "s", data, warmup_end=6, bound=5, margin=1).ok
        assert not bounded("lag", "s", data, warmup_end=0, bound=5, margin=1).ok

    def test_too_few_samples_after_warm_up_fail(self) -> None:
        v = bounded("lag", "s", series([1, 1, 1, 1]), warmup_end=3, bound=5, margin=1)
        assert v.samples == 2
        assert math.isnan(v.first_third_mean)
        assert not v.ok


class TestGrowth:
    """Memory growth compares the maximum after warm-up with the value at its end."""

    def test_growth_under_the_limit_passes(self) -> None:
        g = growth("d", series([50, 100, 101, 105, 104]), warmup_end=2, limit=0.10)
        assert g.at_warmup == 100
        assert g.maximum_after == 105
        assert g.last == 104
        assert g.ratio == pytest.approx(1.05)
        assert g.ok

    def test_growth_of_ten_percent_fails(self) -> None:
        g = growth("d", series([100, 100, 104, 110, 103]), warmup_end=2, limit=0.10)
        assert g.ratio == pytest.approx(1.10)
        assert g.end_ratio == pytest.approx(1.03)
        assert not g.ok

    def test_reference_is_the_last_sample_not_after_warm_up(self) -> None:
        g = growth("d", [(0, 80), (9, 100), (11, 105)], warmup_end=10, limit=0.10)
        assert g.at_warmup == 100

    def test_no_sample_after_warm_up_is_refused(self) -> None:
        with pytest.raises(ValueError, match="no sample after warm-up"):
            growth("d", series([1, 2]), warmup_end=100, limit=0.10)


class TestRates:
    """Rates come from counters over a window and from events per block timestamp."""

    def test_counter_rate_over_the_window(self) -> None:
        counter = [(0, 0), (10, 500), (20, 1500), (30, 2500), (40, 2600)]
        assert counter_rate(counter, 10, 30) == 100.0

    def test_counter_rate_needs_two_samples_inside(self) -> None:
        with pytest.raises(ValueError, match="two samples"):
            counter_rate([(0, 0), (10, 5)], 5, 9)

    def test_block_rate_counts_blocks_after_the_start(self) -> None:
        blocks = [(100, 1000), (101, 900), (102, 1100), (103, 1000)]
        # the block stamped 100 closes the window's start: its events are before it
        assert block_rate(blocks, 100, 103) == 1000.0

    def test_block_rate_refuses_an_empty_window(self) -> None:
        with pytest.raises(ValueError, match="empty window"):
            block_rate([(1, 5)], 3, 3)
