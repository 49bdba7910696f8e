"""When to publish, as Chainlink's off-chain reporting does: deviation or heartbeat.

Pure: the caller passes the time. A good reading is published when

* nothing was published yet (``first``);
* it moved at least the deviation threshold from the last published value (``deviation``):
  relative ``|v - last| / |last| >= relative`` (from 0 any move counts), or absolute
  ``|v - last| >= absolute``; without a threshold, any change counts;
* ``heartbeat_s`` or more passed since the last publish (``heartbeat``), changed or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from dnft.config import FeedSettings
from oracle_feeds.types import LastPublished
from oracle_feeds.validate import relative_change

PublishReason = Literal["first", "deviation", "heartbeat"]


@dataclass(frozen=True, slots=True)
class PublishPolicy:
    relative: Decimal | None = None
    absolute: Decimal | None = None
    heartbeat_s: float | None = None

    @classmethod
    def of(cls, feed: FeedSettings) -> PublishPolicy:
        deviation = feed.deviation
        return cls(
            relative=deviation.relative if deviation else None,
            absolute=deviation.absolute if deviation else None,
            heartbeat_s=feed.heartbeat_s,
        )

    def deviates(self, last: Decimal, value: Decimal) -> bool:
        if self.relative is not None:
            return relative_change(last, value) >= self.relative
        if self.absolute is not None:
            return abs(value - last) >= self.absolute
        return value != last

    def heartbeat_due_at(self, last: LastPublished | None) -> float | None:
        """When the next heartbeat publish is due (None: no heartbeat, or nothing yet)."""
        if last is None or self.heartbeat_s is None:
            return None
        return last.published_at + self.heartbeat_s

    def decide(
        self, last: LastPublished | None, value: Decimal, now: float
    ) -> PublishReason | None:
        """Why ``value`` (a validated reading) is to be published at ``now``, or None."""
        if last is None:
            return "first"
        if self.deviates(last.value, value):
            return "deviation"
        due = self.heartbeat_due_at(last)
        if due is not None and now >= due:
            return "heartbeat"
        return None
