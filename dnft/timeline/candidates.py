"""Render candidates in Postgres: renders that did not go straight to ``token_versions``.

A *candidate* is a render that failed a guardrail, one held for review (``pending``), one a
curator rejected, or one superseded (by a newer render of the token, or by a re-roll). All of a
job's attempts are recorded in one transaction with its outcome, so a re-delivered job never
renders twice. Statuses move only forward (see :mod:`dnft.timeline.decisions`).
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import orjson


@dataclass(frozen=True, slots=True)
class NewCandidate:
    """A render attempt to record (image/metadata fields are None where it never got that
    far: a PNG that does not decode is not stored; a document that fails the schema neither)."""

    collection: str
    token_id: int
    state_hash: str
    state: str  # canonical JSON
    job_seed: int
    seed: int
    attempt: int
    status: str
    reasons: list[dict[str, str]]
    image_sha256: str | None
    image_cid: str | None
    metadata_sha256: str | None
    metadata_cid: str | None
    metadata: str | None  # JSON
    phash: int | None
    triggered_by: str  # JSON list


async def insert_candidate(conn: asyncpg.Connection, c: NewCandidate) -> int | None:
    """Record one attempt; returns its id, or None when that (token, state, seed) was recorded
    before (a re-delivered job). A new ``pending`` one supersedes the token's older pending
    ones, so a curator only ever decides on a token's latest render."""
    new_id = await conn.fetchval(
        "insert into curation_candidates (collection, token_id, state_hash, state, job_seed, "
        "seed, attempt, status, reasons, image_sha256, image_cid, metadata_sha256, "
        "metadata_cid, metadata, phash, triggered_by) values ($1, $2, $3, $4, $5, $6, $7, $8, "
        "$9, $10, $11, $12, $13, $14, $15, $16) "
        "on conflict (collection, token_id, state_hash, seed) do nothing returning id",
        c.collection,
        c.token_id,
        c.state_hash,
        c.state,
        c.job_seed,
        c.seed,
        c.attempt,
        c.status,
        orjson.dumps(c.reasons).decode(),
        c.image_sha256,
        c.image_cid,
        c.metadata_sha256,
        c.metadata_cid,
        c.metadata,
        c.phash,
        c.triggered_by,
    )
    if new_id is not None and c.status == "pending":
        await conn.execute(
            "update curation_candidates set status = 'superseded', decided_at = now(), "
            "reasons = $4 where collection = $1 and token_id = $2 and status = 'pending' "
            "and id <> $3",
            c.collection,
            c.token_id,
            new_id,
            orjson.dumps(
                [{"check": "superseded", "reason": f"a newer render (#{new_id}) replaced it"}]
            ).decode(),
        )
    return None if new_id is None else int(new_id)
