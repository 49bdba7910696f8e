"""A token's versions are its timeline: what decides a job, and how a version is inserted.

Every published change of a token's current state is a new version, numbered 1, 2, 3... per
token; a state the token had before gets a new version too, a copy of that state's newest
earlier version (renders are deterministic per (token, state, seed) and metadata carries no
version number, so nothing is rendered again). Two consecutive versions of a token never
share a state: every insert here is guarded by the token's newest version and serialised per
token (a transaction-scoped advisory lock), so a re-delivered or replayed job, or two workers
racing on one token during a rebalance, add nothing.

:func:`job_action` is the pure decision; the inserts run in the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import asyncpg

JobAction = Literal["announce", "copy", "handled", "stale", "render"]

# The first key of every per-token version lock (pg_advisory_xact_lock(int, int) has a key
# space of its own, apart from the 64-bit keys of leader election and migrations): "dnfv".
_LOCK_CLASS = 0x646E6676

# Columns of an inserted version, as dnft.timeline.announce.metadata_update reads them.
_RETURNING = "returning version, metadata_sha256, metadata_cid, image_sha256, created_at"
_NEWEST = (
    "with newest as (select version, state_hash from token_versions "
    "where collection = $1 and token_id = $2 order by version desc limit 1) "
)
_INSERT = (
    _NEWEST + "insert into token_versions (collection, token_id, version, state_hash, state, "
    "image_sha256, image_cid, metadata_sha256, metadata_cid, metadata, triggered_by) "
    "select $1, $2, coalesce((select version from newest), 0) + 1, $3, $4, $5, $6, $7, $8, $9, "
    "$10 where (select state_hash from newest) is distinct from $3 " + _RETURNING
)
_COPY = (
    _NEWEST + ", earlier as (select * from token_versions where collection = $1 "
    "and token_id = $2 and state_hash = $3 order by version desc limit 1) "
    "insert into token_versions (collection, token_id, version, state_hash, state, "
    "image_sha256, image_cid, metadata_sha256, metadata_cid, metadata, triggered_by) "
    "select $1, $2, coalesce((select version from newest), 0) + 1, e.state_hash, e.state, "
    "e.image_sha256, e.image_cid, e.metadata_sha256, e.metadata_cid, e.metadata, $4 "
    "from earlier e where (select state_hash from newest) is distinct from $3 " + _RETURNING
)


def job_action(
    job_state: str,
    *,
    current_state: str | None,
    newest_state: str | None,
    had_state: bool,
    tried: bool,
) -> JobAction:
    """What a render job for ``job_state`` does, given the token's current state (None: not
    known), its newest version's state (None: no version), whether some version of the token
    has ``job_state`` and whether the job left curation candidates. Pure.

    * ``announce``: the newest version is the job's state (a re-delivered or replayed job):
      announce it again, consumers dedupe by version;
    * ``copy``: the token is back in a state it had before: a new version copies it, without
      review (it was public before);
    * ``handled``: held for review, rejected or failed its guardrails: nothing to do;
    * ``stale``: the token's state moved on (a newer job follows);
    * ``render``: a state never public before.
    """
    if newest_state == job_state:
        return "announce"
    if current_state == job_state and had_state:
        return "copy"
    if tried:
        return "handled"
    if current_state != job_state:
        return "stale"
    return "render"


@dataclass(frozen=True, slots=True)
class NewVersion:
    """A rendered (or approved) state to publish as a token's next version."""

    collection: str
    token_id: int
    state_hash: str
    state: str  # canonical JSON
    image_sha256: str
    image_cid: str
    metadata_sha256: str
    metadata_cid: str
    metadata: str  # JSON
    triggered_by: str  # JSON list


async def lock_token(conn: asyncpg.Connection, collection: str, token_id: int) -> None:
    """Serialise version inserts of one token until the caller's transaction ends (blocks on
    a concurrent inserter of the same token). Must run inside a transaction."""
    await conn.execute(
        "select pg_advisory_xact_lock($1, hashtext($2::text || '/' || $3::numeric::text))",
        _LOCK_CLASS,
        collection,
        token_id,
    )


async def insert_version(conn: asyncpg.Connection, v: NewVersion) -> asyncpg.Record | None:
    """Insert ``v`` as the token's next version unless its newest version already has that
    state; returns the new row (version, metadata_sha256, metadata_cid, image_sha256,
    created_at) or None. Locks the token; runs in the caller's transaction, commits nothing."""
    await lock_token(conn, v.collection, v.token_id)
    row: asyncpg.Record | None = await conn.fetchrow(
        _INSERT,
        v.collection,
        v.token_id,
        v.state_hash,
        v.state,
        v.image_sha256,
        v.image_cid,
        v.metadata_sha256,
        v.metadata_cid,
        v.metadata,
        v.triggered_by,
    )
    return row


async def copy_version(
    conn: asyncpg.Connection, collection: str, token_id: int, state_hash: str, triggered_by: str
) -> asyncpg.Record | None:
    """Insert the token's next version as a copy of its newest earlier version of
    ``state_hash`` (image, metadata and state), with ``triggered_by`` (a JSON list); returns the
    new row as :func:`insert_version` does, or None when the newest version already has that
    state or no version ever had it. Locks the token; runs in the caller's transaction,
    commits nothing."""
    await lock_token(conn, collection, token_id)
    row: asyncpg.Record | None = await conn.fetchrow(
        _COPY, collection, token_id, state_hash, triggered_by
    )
    return row


async def newest_version(
    conn: asyncpg.Connection, collection: str, token_id: int
) -> asyncpg.Record | None:
    """The token's newest version's number and state_hash, or None when it has none."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "select version, state_hash from token_versions where collection = $1 "
        "and token_id = $2 order by version desc limit 1",
        collection,
        token_id,
    )
    return row


__all__ = [
    "JobAction",
    "NewVersion",
    "copy_version",
    "insert_version",
    "job_action",
    "lock_token",
    "newest_version",
]
