"""Validated readings -> ``dnft.oracle.observation.v1`` messages, published with intent.

Each publish is the three steps of :mod:`oracle_feeds.store`: record the intent (round id and
exact bytes), send to Kafka and wait for the acknowledgement, commit. Messages are keyed by
feed id, so one feed's rounds stay in order on one partition. The leader's lease is checked
(``fence``) right before each send: a leader that wakes from a pause publishes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from dnft.kafka import AsyncProducer, OutgoingMessage
from dnft.validation import validate_message
from oracle_feeds.parse import format_decimal, iso_utc
from oracle_feeds.policy import PublishReason
from oracle_feeds.store import FeedStore, Intent, as_stored
from oracle_feeds.types import LastPublished, Reading, SourceObservation
from schemas import ORACLE_OBSERVATION_V1


def observation(
    reading: Reading, round_id: int, reason: PublishReason, published_at: float
) -> dict[str, Any]:
    """The message body; raises DecodeError if it breaks the schema (a bug, not bad data)."""
    body: dict[str, Any] = {
        "schema": ORACLE_OBSERVATION_V1,
        "feed_id": reading.feed_id,
        "value": format_decimal(reading.value),
        "observed_at": iso_utc(reading.observed_at),
        "published_at": iso_utc(published_at),
        "round_id": round_id,
        "reason": reason,
        "sources": [_source(s) for s in reading.sources],
    }
    validate_message(body)
    return body


def _source(source: SourceObservation) -> dict[str, Any]:
    out: dict[str, Any] = {
        "source": source.source,
        "value": format_decimal(source.value),
        "response_sha256": source.response_sha256,
        "observed_at": iso_utc(source.observed_at),
    }
    if source.agreed is not None:
        out["agreed"] = source.agreed
    if source.block_number is not None:
        out["block_number"] = source.block_number
    if source.source_round_id is not None:
        out["source_round_id"] = str(source.source_round_id)
    return out


class ObservationPublisher:
    """Publishes one feed's rounds through ``store`` and ``producer``. Not for concurrent use
    on one feed (each feed has one runner task)."""

    def __init__(
        self,
        producer: AsyncProducer,
        store: FeedStore,
        topic: str,
        *,
        fence: Callable[[], None] | None = None,
    ) -> None:
        self._producer = producer
        self._store = store
        self.topic = topic
        # LeaderLock.check in the daemon; None where no lease applies (tests driving one feed).
        self._fence = fence

    def message(self, feed_id: str, payload: bytes) -> OutgoingMessage:
        return OutgoingMessage(
            self.topic,
            value=payload,
            key=feed_id.encode(),
            headers=(("schema", ORACLE_OBSERVATION_V1.encode()),),
        )

    def intent(
        self, last: LastPublished | None, reading: Reading, reason: PublishReason, now: float
    ) -> Intent:
        """The round after ``last`` carrying ``reading``, serialised once, for good."""
        round_id = (last.round_id if last is not None else 0) + 1
        payload = orjson.dumps(observation(reading, round_id, reason, now))
        # Times as Postgres keeps them (microseconds), so a restart sees the same values.
        return Intent(
            round_id, reading.value, as_stored(reading.observed_at), as_stored(now), payload
        )

    async def record(self, feed_id: str, intent: Intent) -> None:
        """Step 1. Raises ServiceError (Postgres down, lock lost, a second writer): stop."""
        await self._store.record_intent(feed_id, intent)

    async def send(self, feed_id: str, intent: Intent) -> LastPublished:
        """Steps 2 and 3: send a recorded intent's exact bytes, then commit it.

        Raises KafkaError (the intent stays recorded: send it again before anything else),
        LeaseLost (nothing sent) or ServiceError (Postgres).
        """
        if self._fence is not None:
            self._fence()
        await self._producer.send(self.message(feed_id, intent.message))
        await self._store.commit(feed_id, intent.round_id)
        return intent.published()
