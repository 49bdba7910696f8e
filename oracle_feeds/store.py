"""The last published round of each feed, in Postgres (``oracle_feed_state``).

Publishing is intent, send, commit (the full argument is in
``schemas/migrations/0002_oracle.sql``):

1. :meth:`FeedStore.record_intent`: the next round id and the exact message bytes;
2. the caller sends them to Kafka and waits for the acknowledgement;
3. :meth:`FeedStore.commit`: the pending round becomes the last published one.

Round ids are deterministic (last + 1) and an intent found at start is re-sent byte for byte,
so a crash at any point leaves at most one byte-identical duplicate, which consumers drop by
``(feed_id, round_id)``; a round is never lost and never reused for another value.

All writes go through one connection, the leader lock's, one unit of work at a time
(:meth:`dnft.leader.LeaderLock.session`): each is fenced by the lease first, and a replica
whose lock session ended fails instead of racing the new leader.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from dnft.db import SerialConnection, Sessions
from dnft.errors import ServiceError
from oracle_feeds.types import LastPublished


@dataclass(frozen=True, slots=True)
class Intent:
    """A round about to be sent: the message bytes exactly as they go to Kafka."""

    round_id: int
    value: Decimal
    observed_at: float
    published_at: float
    message: bytes

    def published(self) -> LastPublished:
        return LastPublished(self.round_id, self.value, self.observed_at, self.published_at)


@dataclass(frozen=True, slots=True)
class FeedState:
    last: LastPublished | None
    pending: Intent | None


class FeedStore:
    """Every method raises ServiceError when Postgres fails or the connection is gone, and
    LeaseLost (a ServiceError) when ``source`` is a leader lock whose lease is not valid.
    ``source``: a leader lock, or a plain asyncpg connection (tests, tools)."""

    def __init__(self, source: Sessions | Any) -> None:
        self._sessions: Sessions = (
            source if hasattr(source, "session") else SerialConnection(source)
        )

    @contextlib.asynccontextmanager
    async def _db(self, what: str) -> AsyncIterator[asyncpg.Connection]:
        async with self._sessions.session() as conn:
            try:
                yield conn
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                raise ServiceError(f"oracle state: {what} failed: {exc}") from exc

    async def load(self, feed_id: str) -> FeedState:
        async with self._db(f"loading {feed_id}") as conn:
            row = await conn.fetchrow("select * from oracle_feed_state where feed_id = $1", feed_id)
        if row is None:
            return FeedState(None, None)
        last = None
        if row["round_id"] > 0:
            last = LastPublished(
                row["round_id"],
                row["value"],
                row["observed_at"].timestamp(),
                row["published_at"].timestamp(),
            )
        pending = None
        if row["pending_round_id"] is not None:
            pending = Intent(
                row["pending_round_id"],
                row["pending_value"],
                row["pending_observed_at"].timestamp(),
                row["pending_published_at"].timestamp(),
                bytes(row["pending_message"]),
            )
        return FeedState(last, pending)

    async def record_intent(self, feed_id: str, intent: Intent) -> None:
        """Step 1. Raises ServiceError unless ``intent`` is the round after the last one and
        no other intent is pending (another writer, or a caller that skipped recovery)."""
        async with self._db(f"recording round {intent.round_id} of {feed_id}") as conn:
            status = await self._record(conn, feed_id, intent)
        if status != "UPDATE 1":
            raise ServiceError(
                f"oracle feed {feed_id}: round {intent.round_id} is not the next round, or "
                "another round is pending; is a second writer running?"
            )

    @staticmethod
    async def _record(conn: asyncpg.Connection, feed_id: str, intent: Intent) -> str:
        async with conn.transaction():
            await conn.execute(
                "insert into oracle_feed_state (feed_id) values ($1) on conflict do nothing",
                feed_id,
            )
            status: str = await conn.execute(
                """
                update oracle_feed_state set
                    pending_round_id = $2,
                    pending_value = $3,
                    pending_observed_at = $4,
                    pending_published_at = $5,
                    pending_message = $6,
                    updated_at = now()
                where feed_id = $1 and pending_round_id is null and round_id + 1 = $2
                """,
                feed_id,
                intent.round_id,
                intent.value,
                _ts(intent.observed_at),
                _ts(intent.published_at),
                intent.message,
            )
        return status

    async def commit(self, feed_id: str, round_id: int) -> None:
        """Step 3, after Kafka acknowledged round ``round_id``."""
        async with self._db(f"committing round {round_id} of {feed_id}") as conn:
            status = await conn.execute(
                """
                update oracle_feed_state set
                    round_id = pending_round_id,
                    value = pending_value,
                    observed_at = pending_observed_at,
                    published_at = pending_published_at,
                    pending_round_id = null,
                    pending_value = null,
                    pending_observed_at = null,
                    pending_published_at = null,
                    pending_message = null,
                    updated_at = now()
                where feed_id = $1 and pending_round_id = $2
                """,
                feed_id,
                round_id,
            )
        if status != "UPDATE 1":
            raise ServiceError(f"oracle feed {feed_id}: no pending round {round_id} to commit")


def _ts(unix_s: float) -> datetime:
    return datetime.fromtimestamp(unix_s, UTC)


def as_stored(unix_s: float) -> float:
    """``unix_s`` at the microsecond precision of a ``timestamptz`` column."""
    return _ts(unix_s).timestamp()
