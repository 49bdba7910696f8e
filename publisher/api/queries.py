"""Reads of the regenerator's tables for the API. Read-only: nothing here writes or locks.

Every function takes the pool, runs one or two short queries (through the primary key or the
image index of ``token_versions``) and returns plain frozen values with JSON columns decoded.
Raises what asyncpg raises when Postgres fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson


@dataclass(frozen=True, slots=True)
class VersionRow:
    """One version of a token (metadata itself stays in the blob store: see metadata_sha256)."""

    token_id: int
    version: int
    state: dict[str, Any]
    state_hash: str
    name: str
    image_sha256: str
    image_cid: str
    metadata_sha256: str
    metadata_cid: str
    image_url: str
    triggered_by: list[str]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class EventRow:
    """A chain event still applied to a token (a retracted one is gone from the table)."""

    event: str
    block_number: int
    args: dict[str, Any]


_VERSION_COLUMNS = (
    "token_id, version, state, state_hash, metadata->>'name' as name, image_sha256, image_cid, "
    "metadata_sha256, metadata_cid, metadata->>'image' as image_url, triggered_by, created_at"
)


def _version(row: asyncpg.Record) -> VersionRow:
    return VersionRow(
        token_id=int(row["token_id"]),
        version=int(row["version"]),
        state=orjson.loads(row["state"]),
        state_hash=row["state_hash"],
        name=row["name"] or "",
        image_sha256=row["image_sha256"],
        image_cid=row["image_cid"],
        metadata_sha256=row["metadata_sha256"],
        metadata_cid=row["metadata_cid"],
        image_url=row["image_url"] or "",
        triggered_by=[str(t) for t in orjson.loads(row["triggered_by"])],
        created_at=row["created_at"],
    )


async def latest_version(pool: asyncpg.Pool, collection: str, token_id: int) -> VersionRow | None:
    row = await pool.fetchrow(
        f"select {_VERSION_COLUMNS} from token_versions where collection = $1 and token_id = $2 "
        "order by version desc limit 1",
        collection,
        token_id,
    )
    return None if row is None else _version(row)


async def version(
    pool: asyncpg.Pool, collection: str, token_id: int, number: int
) -> VersionRow | None:
    row = await pool.fetchrow(
        f"select {_VERSION_COLUMNS} from token_versions where collection = $1 and token_id = $2 "
        "and version = $3",
        collection,
        token_id,
        number,
    )
    return None if row is None else _version(row)


async def versions(
    pool: asyncpg.Pool, collection: str, token_id: int, *, from_version: int, limit: int
) -> list[VersionRow]:
    """Versions ``from_version`` and up, oldest first, at most ``limit``."""
    rows = await pool.fetch(
        f"select {_VERSION_COLUMNS} from token_versions where collection = $1 and token_id = $2 "
        "and version >= $3 order by version limit $4",
        collection,
        token_id,
        from_version,
        limit,
    )
    return [_version(r) for r in rows]


async def token_known(pool: asyncpg.Pool, collection: str, token_id: int) -> bool:
    """Whether the regenerator knows the token (it may have no rendered version yet)."""
    found = await pool.fetchval(
        "select true from regen_tokens where collection = $1 and token_id = $2",
        collection,
        token_id,
    )
    return bool(found)


async def image_known(pool: asyncpg.Pool, sha256: str) -> bool:
    """Whether some version names this image (only those are served)."""
    found = await pool.fetchval(
        "select true from token_versions where image_sha256 = $1 limit 1", sha256
    )
    return bool(found)


async def latest_versions(
    pool: asyncpg.Pool, collection: str, *, after_token: int, limit: int
) -> list[VersionRow]:
    """Each token's latest version, by token id: tokens above ``after_token`` (-1 for all),
    at most ``limit``."""
    rows = await pool.fetch(
        f"select distinct on (token_id) {_VERSION_COLUMNS} from token_versions "
        "where collection = $1 and token_id > $2 order by token_id, version desc limit $3",
        collection,
        after_token,
        limit,
    )
    return [_version(r) for r in rows]


async def events(pool: asyncpg.Pool, collection: str, event_ids: list[str]) -> dict[str, EventRow]:
    """The applied events among ``event_ids``, by id."""
    if not event_ids:
        return {}
    rows = await pool.fetch(
        "select event_id, event, block_number, args from regen_events "
        "where collection = $1 and event_id = any($2::text[])",
        collection,
        event_ids,
    )
    return {
        r["event_id"]: EventRow(r["event"], int(r["block_number"]), orjson.loads(r["args"]))
        for r in rows
    }
