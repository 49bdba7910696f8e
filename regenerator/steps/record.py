"""Step 4: record each rendered job's outcome, one Postgres transaction per job.

In a job's transaction: its failed attempts as ``guardrail_failed`` candidates; then, when an
attempt passed, either the token's next public version (``publish: auto``; unless its newest
version already has that state: another delivery of the job won) with the version's art hash,
or a ``pending`` candidate held for a curator (``publish: review``). Recording a job twice adds
nothing (candidates are unique per (token, state, seed); versions are guarded by the token's
newest one), so a replayed batch is safe.

A new public version is queued on the batch's :class:`~regenerator.steps.announce.Announcements`
(sent after the batch's last transaction), counted in ``dnft_renders_total`` and
``dnft_plan_to_metadata_seconds`` and logged. Raises what asyncpg raises (that job's
transaction rolls back; earlier jobs of the chunk stay recorded, and are no-ops on replay).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
import orjson
import structlog

from dnft import metrics
from dnft.timeline import NewCandidate, NewVersion, insert_candidate, insert_version, set_art_hash
from regenerator.steps.announce import Announcements
from regenerator.steps.jobs import Attempt, Rendered

log = structlog.get_logger("dnft.regenerator.render")


async def record_chunk(
    pool: asyncpg.Pool, rendered: Sequence[Rendered], announcements: Announcements
) -> list[int]:
    """Record each job of a chunk in its own transaction (one connection); returns the new
    public versions."""
    created: list[int] = []
    async with pool.acquire() as conn:
        for job in rendered:
            async with conn.transaction():
                version = await record(conn, job, announcements)
            if version is not None:
                created.append(version)
    return created


async def record(
    conn: asyncpg.Connection, rendered: Rendered, announcements: Announcements
) -> int | None:
    """Record a job's outcome in the caller's transaction: its failed attempts, then the
    version (``auto``) or the pending candidate (``review``). Returns the new public version,
    if any."""
    job, passed = rendered.job, rendered.passed
    name = job.bound.collection.name
    for attempt in rendered.failed:
        await insert_candidate(conn, candidate(attempt, "guardrail_failed"))
    if passed is None:
        metrics.renders_total.labels(name, "guardrail_failed").inc()
        log.warning(
            "every attempt failed its guardrails: the previous version stays public",
            collection=name,
            token=job.state.token_id,
            attempts=len(rendered.failed),
        )
        return None
    assert passed.image is not None
    assert passed.meta is not None
    if job.bound.collection.publish == "review":
        held = await insert_candidate(conn, candidate(passed, "pending"))
        if held is not None:
            metrics.renders_total.labels(name, "pending").inc()
            log.info(
                "version held for review", collection=name, token=job.state.token_id, candidate=held
            )
        return None
    row = await insert_version(
        conn,
        NewVersion(
            name,
            job.state.token_id,
            job.state.state_hash,
            job.state.canonical().decode(),
            passed.image.sha256,
            passed.image.cid,
            passed.meta.sha256,
            passed.meta.cid,
            passed.meta_bytes.decode(),
            orjson.dumps(list(job.job.triggered_by)).decode(),
        ),
    )
    if row is None:  # another delivery of this job won the race: nothing new
        return None
    if passed.facts is not None:
        await set_art_hash(conn, name, job.state.token_id, int(row["version"]), passed.phash)
    metrics.renders_total.labels(name, "rendered").inc()
    announcements.add(job.bound, job.state.token_id, row)
    lag = datetime.now(UTC) - job.job.planned_at
    metrics.plan_to_metadata_seconds.observe(max(0.0, lag.total_seconds()))
    log.info(
        "version created",
        collection=name,
        token=job.state.token_id,
        state=job.state.state_hash[:12],
        version=row["version"],
        image=passed.image.sha256[:12],
        attempts=len(rendered.failed) + 1,
    )
    return int(row["version"])


def candidate(attempt: Attempt, status: str) -> NewCandidate:
    """The candidate row of one attempt (what it got as far as: image and metadata are None
    where it never got that far)."""
    job = attempt.job
    return NewCandidate(
        collection=job.bound.collection.name,
        token_id=job.state.token_id,
        state_hash=job.state.state_hash,
        state=job.state.canonical().decode(),
        job_seed=job.request.seed,
        seed=attempt.request.seed,
        attempt=attempt.number,
        status=status,
        reasons=[f.as_json() for f in attempt.failures],
        image_sha256=None if attempt.image is None else attempt.image.sha256,
        image_cid=None if attempt.image is None else attempt.image.cid,
        metadata_sha256=None if attempt.meta is None else attempt.meta.sha256,
        metadata_cid=None if attempt.meta is None else attempt.meta.cid,
        metadata=None if attempt.meta is None else attempt.meta_bytes.decode(),
        phash=None if attempt.facts is None else attempt.phash,
        triggered_by=orjson.dumps(list(job.job.triggered_by)).decode(),
    )
