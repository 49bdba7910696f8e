"""Re-render tokens on an operator's request (``dnft rerender``), without duplicate effects.

For each selected token, in one transaction:

1. its state is recomputed from its stored events and feed values (the collection's rules may
   have changed): a state that changed gets a new render job, as any state change does;
2. a current state that is not the token's newest version (a lost or failed render, or a
   return to an earlier state whose copy was lost) has its job sent again;
3. with ``force``, a current state that is the token's newest version has its job sent again
   too: the render worker then re-announces that version (no second version: two
   consecutive versions never share a state).

A dry run does all of it and rolls the transaction back, so its counts are exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from dnft.collection import BoundCollection
from dnft.config import Settings
from dnft.resources import DaemonResources
from regenerator.planner import Planner

TRIGGER = "rerender"


@dataclass(frozen=True, slots=True)
class Selection:
    """Which tokens: ``tokens`` of ``collection``, or all of ``collection``, or (None) every
    token of every collection."""

    collection: str | None
    tokens: tuple[int, ...] = ()


@dataclass(slots=True)
class RerenderReport:
    selected: int = 0
    unknown: list[int] = field(default_factory=list)  # asked for, but the token has no state
    state_changed: int = 0  # new render jobs: the recomputed state differs
    resent_missing: int = 0  # current state is not the newest version: its job sent again
    resent_rendered: int = 0  # (force) current state is the newest version: re-announced
    sent: int = 0  # jobs Kafka acknowledged
    dry_run: bool = False


async def rerender_selection(
    settings: Settings,
    collections: Sequence[BoundCollection],
    selection: Selection,
    *,
    force: bool = False,
    dry_run: bool = False,
) -> RerenderReport:
    """``dnft rerender``: :func:`rerender` with a pool and a producer of its own (closed before
    it returns), jobs to ``kafka.topics.render_jobs``."""
    async with DaemonResources(settings, "rerender") as res:
        pool = await res.pool()
        producer = await res.producer()
        planner = Planner(pool, producer, collections, jobs_topic=settings.kafka.topics.render_jobs)
        return await rerender(pool, planner, selection, force=force, dry_run=dry_run)


async def rerender(
    pool: asyncpg.Pool,
    planner: Planner,
    selection: Selection,
    *,
    force: bool = False,
    dry_run: bool = False,
) -> RerenderReport:
    """Plan (and unless ``dry_run`` send) the render jobs for ``selection``.

    Raises on Postgres or Kafka failure; running it again is safe (jobs are keyed by state).
    """
    report = RerenderReport(dry_run=dry_run)
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            keys = await _selected(conn, selection, report)
            report.selected = len(keys)
            jobs = await planner.recompute(conn, keys, TRIGGER)
            report.state_changed = len(jobs)
            changed = {(j.collection, j.token_id) for j in jobs}
            rows = await conn.fetch(
                "with newest as (select t.collection, t.token_id, t.state_hash, "
                "(select v.state_hash from token_versions v where v.collection = t.collection "
                "and v.token_id = t.token_id order by v.version desc limit 1) = t.state_hash "
                "as rendered from regen_tokens t, "
                "unnest($1::text[], $2::numeric[]) as k(collection, token_id) "
                "where t.collection = k.collection and t.token_id = k.token_id) "
                "update regen_render_jobs j set sent_at = null, planned_at = now() "
                "from newest n where j.collection = n.collection and j.token_id = n.token_id "
                "and j.state_hash = n.state_hash and j.sent_at is not null "
                "and ($3 or not coalesce(n.rendered, false)) "
                "returning j.collection, j.token_id, coalesce(n.rendered, false) as rendered",
                [k[0] for k in keys if k not in changed],
                [k[1] for k in keys if k not in changed],
                force,
            )
            report.resent_rendered = sum(1 for r in rows if r["rendered"])
            report.resent_missing = len(rows) - report.resent_rendered
        except BaseException:
            await transaction.rollback()
            raise
        if dry_run:
            await transaction.rollback()
            return report
        await transaction.commit()
    report.sent = await planner.send_pending()
    return report


async def _selected(
    conn: asyncpg.Connection, selection: Selection, report: RerenderReport
) -> list[tuple[str, int]]:
    if selection.collection is None:
        rows = await conn.fetch(
            "select collection, token_id from regen_tokens order by collection, token_id"
        )
        return [(r["collection"], int(r["token_id"])) for r in rows]
    if not selection.tokens:
        rows = await conn.fetch(
            "select token_id from regen_tokens where collection = $1 order by token_id",
            selection.collection,
        )
        return [(selection.collection, int(r["token_id"])) for r in rows]
    rows = await conn.fetch(
        "select token_id from regen_tokens where collection = $1 and token_id = any($2::numeric[])",
        selection.collection,
        list(selection.tokens),
    )
    known = {int(r["token_id"]) for r in rows}
    report.unknown = sorted(set(selection.tokens) - known)
    return [(selection.collection, t) for t in sorted(known)]
