"""The render backlog, for ``dnft status``: planned jobs not yet sent, states not yet rendered."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class RenderBacklog:
    unsent_jobs: int  # planned in the outbox, not yet acknowledged by Kafka
    oldest_unsent_s: float | None
    tokens_without_version: int  # current state has no rendered version yet


async def render_backlog(conn: asyncpg.Connection) -> RenderBacklog:
    row = await conn.fetchrow(
        "select count(*) as unsent, extract(epoch from now() - min(planned_at)) as oldest "
        "from regen_render_jobs where sent_at is null"
    )
    waiting = await conn.fetchval(
        "select count(*) from regen_tokens t where not exists (select 1 from token_versions v "
        "where v.collection = t.collection and v.token_id = t.token_id "
        "and v.state_hash = t.state_hash)"
    )
    assert row is not None
    oldest = row["oldest"]
    return RenderBacklog(
        unsent_jobs=int(row["unsent"]),
        oldest_unsent_s=None if oldest is None else float(oldest),
        tokens_without_version=int(waiting),
    )
