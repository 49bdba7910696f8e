"""Shared types of the oracle: readings, what was last published, and the Feed contract."""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True, slots=True)
class SourceObservation:
    """One source behind a reading, with the sha256 of its raw response (provenance).

    For HTTP the hash covers the exact body bytes received; for an aggregator, the ABI-encoded
    ``latestRoundData`` return data or the canonical JSON of the ``AnswerUpdated`` log.
    ``agreed`` is set only by median feeds: whether the source was within tolerance.
    """

    source: str
    value: Decimal
    response_sha256: str
    observed_at: float
    agreed: bool | None = None
    block_number: int | None = None
    source_round_id: int | None = None


@dataclass(frozen=True, slots=True)
class Reading:
    """A value a feed read, not yet validated.

    ``observed_at`` is Unix seconds: the source's own timestamp when it gives one, else when
    the response arrived. ``confirmed``: the reading is already confirmed by a quorum
    (median feeds), so a jump beyond ``max_change`` is not held for a second reading.
    """

    feed_id: str
    value: Decimal
    observed_at: float
    sources: tuple[SourceObservation, ...]
    confirmed: bool = False


@dataclass(frozen=True, slots=True)
class LastPublished:
    """The round a feed last published and Kafka acknowledged (persisted in Postgres)."""

    round_id: int
    value: Decimal
    observed_at: float
    published_at: float


class Feed(Protocol):
    """One external source kind (``http``, ``chainlink``, ``median``) behind one contract."""

    @property
    def id(self) -> str:
        """The feed's configured id (the Kafka key of its observations)."""
        ...

    async def read(self) -> Reading:
        """One attempt to read the current value. Never blocks the event loop.

        Raises ``oracle_feeds.validate.Rejected`` with its reason when the source fails or
        answers something unusable (timeouts, HTTP errors, malformed bodies, ...). Checks that
        need the feed's history (bounds, staleness, jumps) are the runner's, not the feed's.
        """
        ...

    async def close(self) -> None:
        """Release connections; the feed is not read again."""
        ...


class Clock(Protocol):
    """Wall-clock time in Unix seconds; tests pass a clock they move by hand."""

    def now(self) -> float: ...


class SystemClock:
    def now(self) -> float:
        return time.time()
