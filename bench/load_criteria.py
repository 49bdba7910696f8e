"""The pass/fail arithmetic of ``bench/load.py`` (pure: numbers in, verdicts out).

A series is a list of ``(t, value)`` samples with ``t`` in seconds on one clock. "After
warm-up" means ``t >= warmup_end``. A module of its own so that the unit tests
(tests/unit/test_load_bench_math.py) can check the verdicts without running the bench.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Series = Sequence[tuple[float, float]]


@dataclass(frozen=True, slots=True)
class BoundedVerdict:
    """Whether a lag stayed bounded after warm-up: its maximum is at most ``bound`` and the
    mean of the last third of the samples exceeds the mean of the first third by at most
    ``margin`` (it is not growing). Needs at least three samples after warm-up."""

    name: str
    unit: str
    bound: float
    margin: float
    samples: int
    maximum: float
    first_third_mean: float
    last_third_mean: float

    @property
    def growth(self) -> float:
        return self.last_third_mean - self.first_third_mean

    @property
    def ok(self) -> bool:
        return self.samples >= 3 and self.maximum <= self.bound and self.growth <= self.margin


@dataclass(frozen=True, slots=True)
class GrowthVerdict:
    """Whether a memory series grew less than ``limit`` (a fraction) after warm-up: the
    largest sample after warm-up over the sample at the end of warm-up."""

    name: str
    at_warmup: float
    maximum_after: float
    last: float
    limit: float

    @property
    def ratio(self) -> float:
        return self.maximum_after / self.at_warmup if self.at_warmup > 0 else float("inf")

    @property
    def end_ratio(self) -> float:
        return self.last / self.at_warmup if self.at_warmup > 0 else float("inf")

    @property
    def ok(self) -> bool:
        return self.ratio < 1 + self.limit


def after(series: Series, warmup_end: float) -> list[tuple[float, float]]:
    """The samples taken at or after ``warmup_end``, in time order."""
    return sorted((t, v) for t, v in series if t >= warmup_end)


def thirds_means(values: Sequence[float]) -> tuple[float, float]:
    """(mean of the first third, mean of the last third) of ``values``; each third has at
    least one value. Raises ValueError on fewer than three values."""
    if len(values) < 3:
        raise ValueError(f"need at least 3 values, got {len(values)}")
    third = len(values) // 3
    first, last = values[:third], values[-third:]
    return sum(first) / len(first), sum(last) / len(last)


def bounded(
    name: str, unit: str, series: Series, *, warmup_end: float, bound: float, margin: float
) -> BoundedVerdict:
    """Judge ``series`` after warm-up against ``bound`` and the growth ``margin``.

    With fewer than three samples after warm-up the verdict fails (maximum and means are
    reported as NaN where there is nothing to report)."""
    values = [v for _, v in after(series, warmup_end)]
    nan = float("nan")
    if len(values) < 3:
        top = max(values) if values else nan
        return BoundedVerdict(name, unit, bound, margin, len(values), top, nan, nan)
    first, last = thirds_means(values)
    return BoundedVerdict(name, unit, bound, margin, len(values), max(values), first, last)


def growth(name: str, series: Series, *, warmup_end: float, limit: float) -> GrowthVerdict:
    """Judge a memory series: the reference is the last sample at or before ``warmup_end``
    (the first sample when none is that early). Raises ValueError when no sample falls after
    warm-up."""
    ordered = sorted(series)
    later = [v for t, v in ordered if t >= warmup_end]
    if not later:
        raise ValueError(f"{name}: no sample after warm-up")
    earlier = [v for t, v in ordered if t <= warmup_end]
    reference = earlier[-1] if earlier else ordered[0][1]
    return GrowthVerdict(name, reference, max(later), later[-1], limit)


def counter_rate(series: Series, start: float, end: float) -> float:
    """Mean rate of a monotonic counter between ``start`` and ``end``: the increase between
    the first sample at or after ``start`` and the last sample at or before ``end``, over the
    time between those two samples. Raises ValueError when fewer than two samples fall inside.
    """
    inside = sorted((t, v) for t, v in series if start <= t <= end)
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        raise ValueError("need two samples at different times inside the window")
    (t0, v0), (t1, v1) = inside[0], inside[-1]
    return (v1 - v0) / (t1 - t0)


def block_rate(blocks: Sequence[tuple[int, int]], start_ts: float, end_ts: float) -> float:
    """Events per second on chain from ``(block timestamp, events in the block)`` pairs: the
    events of blocks stamped in ``(start_ts, end_ts]`` over ``end_ts - start_ts``. Raises
    ValueError on an empty window."""
    if end_ts <= start_ts:
        raise ValueError(f"empty window ({start_ts} .. {end_ts})")
    events = sum(n for ts, n in blocks if start_ts < ts <= end_ts)
    return events / (end_ts - start_ts)
