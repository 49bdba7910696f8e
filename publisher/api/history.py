"""A token's versions with their causes and changes: what ``/tokens/{id}/versions``, the live
stream and the gallery all show. Reads Postgres (two queries); raises what asyncpg raises."""

from __future__ import annotations

from typing import Any

import asyncpg

from dnft.collection import BoundCollection
from publisher.api import queries
from publisher.api.timeline import MAX_TRIGGERS, describe


async def history(
    pool: asyncpg.Pool,
    bound: BoundCollection,
    public_url: str,
    token_id: int,
    *,
    after: int,
    limit: int,
) -> tuple[list[dict[str, Any]], bool]:
    """Versions after ``after``, oldest first, at most ``limit``; and whether more follow."""
    collection = bound.collection.name
    # Version ``after`` itself is read too: the first entry's changes are against it.
    rows = await queries.versions(
        pool, collection, token_id, from_version=max(1, after), limit=limit + 2
    )
    previous = None
    if after >= 1 and rows and rows[0].version == after:
        previous = rows.pop(0)
    more = len(rows) > limit
    rows = rows[:limit]
    event_ids = sorted(
        {
            t
            for r in rows
            for t in r.triggered_by[:MAX_TRIGGERS]
            if not t.startswith(("feed:", "retracted:"))
        }
    )
    events = await queries.events(pool, collection, event_ids)
    out = []
    for row in rows:
        out.append(describe(row, previous, bound.collection, events, public_url))
        previous = row
    return out, more
