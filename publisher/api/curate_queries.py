"""Reads for the /curate pages: the review queue and the images it may show. Read-only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

# Pending candidates, each with its token's current public version (for side by side).
_QUEUE = (
    "select c.id, c.collection, c.token_id, c.status, c.reasons, c.image_sha256, c.state, "
    "c.seed, c.attempt, c.triggered_by, c.created_at, v.version as current_version, "
    "v.image_sha256 as current_image, v.state as current_state "
    "from curation_candidates c left join lateral (select version, image_sha256, state "
    "from token_versions v where v.collection = c.collection and v.token_id = c.token_id "
    "order by version desc limit 1) v on true "
)
_PENDING = _QUEUE + "where c.status = 'pending' and c.id > $1 order by c.id limit $2"
# Renders whose every attempt failed its guardrails, for the token's current state, with no
# later render of the token: a curator may re-roll (or reject) them.
_FAILED = _QUEUE + (
    "where c.status = 'guardrail_failed' and c.id = (select max(c2.id) "
    "from curation_candidates c2 where c2.collection = c.collection "
    "and c2.token_id = c.token_id) "
    "and exists (select 1 from regen_tokens t where t.collection = c.collection "
    "and t.token_id = c.token_id and t.state_hash = c.state_hash) "
    "order by c.id desc limit $1"
)


@dataclass(frozen=True, slots=True)
class QueueItem:
    """A candidate and its token's current public version (None fields when it has none)."""

    id: int
    collection: str
    token_id: int
    status: str
    reasons: list[dict[str, str]]
    image_sha256: str | None
    state: dict[str, Any]
    seed: int
    attempt: int
    triggered_by: list[str]
    created_at: datetime
    current_version: int | None
    current_image: str | None
    current_state: dict[str, Any] | None


def _item(row: asyncpg.Record) -> QueueItem:
    return QueueItem(
        id=int(row["id"]),
        collection=row["collection"],
        token_id=int(row["token_id"]),
        status=row["status"],
        reasons=orjson.loads(row["reasons"]),
        image_sha256=row["image_sha256"],
        state=orjson.loads(row["state"]),
        seed=int(row["seed"]),
        attempt=int(row["attempt"]),
        triggered_by=[str(t) for t in orjson.loads(row["triggered_by"])],
        created_at=row["created_at"],
        current_version=row["current_version"],
        current_image=row["current_image"],
        current_state=None if row["current_state"] is None else orjson.loads(row["current_state"]),
    )


async def pending(pool: asyncpg.Pool, *, after: int, limit: int) -> list[QueueItem]:
    """Pending candidates with ids above ``after``, oldest first, at most ``limit``."""
    return [_item(r) for r in await pool.fetch(_PENDING, after, limit)]


async def failed(pool: asyncpg.Pool, *, limit: int) -> list[QueueItem]:
    """Tokens whose current state failed its guardrails on every attempt, newest first."""
    return [_item(r) for r in await pool.fetch(_FAILED, limit)]


async def image_known(pool: asyncpg.Pool, sha256: str) -> bool:
    """Whether a candidate or a public version names this image (curators see both)."""
    found = await pool.fetchval(
        "select exists (select 1 from curation_candidates where image_sha256 = $1) "
        "or exists (select 1 from token_versions where image_sha256 = $1)",
        sha256,
    )
    return bool(found)
