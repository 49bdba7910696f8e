"""Derived feeds: the median of other feeds' latest good readings, with a quorum.

Sources are other configured feeds (``http`` or ``chainlink``); each has already passed its
own checks (bounds, staleness, jumps). A source takes part while its reading is fresh
(``max_age_s``). It *agrees* when within ``tolerance`` (relative) of the median of all fresh
sources; the published value is the median of the agreeing ones, observed now, and every
fresh source is recorded with its own value, time, response hash and whether it agreed.
Fewer agreeing sources than the quorum: the reading is refused as ``no_quorum``. A quorum
confirms a jump at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal

from dnft.config import MedianFeedSettings
from oracle_feeds.types import Clock, Reading, SourceObservation, SystemClock
from oracle_feeds.validate import Rejected, relative_change


def median(values: Sequence[Decimal]) -> Decimal:
    """The middle value; the mean of the two middle ones for an even count."""
    if not values:
        raise ValueError("median of no values")
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def agreement(
    values: Mapping[str, Decimal], tolerance: Decimal, quorum: int
) -> tuple[Decimal, frozenset[str]]:
    """``(value, agreeing sources)``; raises Rejected('no_quorum')."""
    if len(values) < quorum:
        raise Rejected("no_quorum", f"{len(values)} fresh source(s), quorum is {quorum}")
    centre = median(list(values.values()))
    agreed = frozenset(
        name for name, value in values.items() if relative_change(centre, value) <= tolerance
    )
    if len(agreed) < quorum:
        raise Rejected(
            "no_quorum",
            f"{len(agreed)} of {len(values)} source(s) within {tolerance} of the median "
            f"{centre}, quorum is {quorum}",
        )
    return median([values[name] for name in agreed]), agreed


class MedianFeed:
    """Implements ``oracle_feeds.types.Feed`` for ``kind: median``.

    ``latest(feed_id)`` returns a source's last accepted reading (the runtime keeps them).
    """

    def __init__(
        self,
        settings: MedianFeedSettings,
        latest: Callable[[str], Reading | None],
        *,
        clock: Clock | None = None,
    ) -> None:
        self._settings = settings
        self._latest = latest
        self._clock = clock or SystemClock()

    @property
    def id(self) -> str:
        return self._settings.id

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(self._settings.sources)

    async def read(self) -> Reading:
        now = self._clock.now()
        max_age = self._settings.max_age_s
        fresh: dict[str, Reading] = {}
        for name in self._settings.sources:
            reading = self._latest(name)
            if reading is not None and (max_age is None or now - reading.observed_at <= max_age):
                fresh[name] = reading
        value, agreed = agreement(
            {name: r.value for name, r in fresh.items()},
            self._settings.tolerance,
            self._settings.quorum,
        )
        sources = tuple(
            SourceObservation(
                source=name,
                value=reading.value,
                response_sha256=reading.sources[0].response_sha256,
                observed_at=reading.observed_at,
                agreed=name in agreed,
            )
            for name, reading in fresh.items()
        )
        # The median is a fact as of now; each source keeps its own observation time.
        return Reading(self.id, value, now, sources, confirmed=True)

    async def close(self) -> None:
        return None
