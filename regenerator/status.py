"""The render backlog, for ``dnft status``: planned jobs not yet sent, states not yet published."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class RenderBacklog:
    unsent_jobs: int  # planned in the outbox, not yet acknowledged by Kafka
    oldest_unsent_s: float | None
    tokens_without_version: int  # current state is not yet the token's newest version


async def render_backlog(conn: asyncpg.Connection) -> RenderBacklog:
    row = await conn.fetchrow(
        "select count(*) as unsent, extract(epoch from now() - min(planned_at)) as oldest "
        "from regen_render_jobs where sent_at is null"
    )
    # Versions are the token's timeline: an earlier version of the current state does not
    # count, only the newest one (a returning state waits for its copy).
    waiting = await conn.fetchval(
        "select count(*) from regen_tokens t where (select v.state_hash from token_versions v "
        "where v.collection = t.collection and v.token_id = t.token_id "
        "order by v.version desc limit 1) is distinct from t.state_hash"
    )
    assert row is not None
    oldest = row["oldest"]
    return RenderBacklog(
        unsent_jobs=int(row["unsent"]),
        oldest_unsent_s=None if oldest is None else float(oldest),
        tokens_without_version=int(waiting),
    )
