"""Each feed's last published round and its age, for ``dnft status``."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class FeedRound:
    feed_id: str
    round_id: int  # 0: nothing published yet
    age_s: float | None  # since the last round was published
    pending: bool  # a round is recorded but not yet acknowledged by Kafka


async def feed_rounds(conn: asyncpg.Connection) -> dict[str, FeedRound]:
    """The last published round of every feed in ``oracle_feed_state``, by feed id."""
    rows = await conn.fetch(
        "select feed_id, round_id, extract(epoch from now() - published_at) as age, "
        "pending_round_id is not null as pending from oracle_feed_state order by feed_id"
    )
    return {
        r["feed_id"]: FeedRound(
            r["feed_id"],
            r["round_id"],
            None if r["age"] is None else float(r["age"]),
            r["pending"],
        )
        for r in rows
    }
