"""Step 1: look a batch of render jobs up in one query and decide each job's action.

Per job, ``dnft.timeline.job_action`` decides from the token's current state, its newest
version and its earlier versions of the job's state, and whether the job left candidates:

* ``announce``: the job's state is the token's newest version (a re-delivered or replayed
  job): announce that version again;
* ``copy``: the token is back in a state it had before: a new version copies that state's
  newest earlier one (no render, no review: it was public before);
* ``handled``: held for review, rejected or failed its guardrails: nothing to do;
* ``stale``: the token's state moved on (a newer job follows): skipped, counted in
  ``dnft_renders_total{outcome="stale"}``;
* ``render``: a state never public before.

A job for a collection this worker does not know is logged and skipped; a job delivered twice
in one batch counts once. So at most one job per token is left to render or copy. One read
query, no writes; raises what asyncpg raises.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import asyncpg
import orjson
import structlog

from dnft import metrics
from dnft.collection import BoundCollection, TokenState
from dnft.messages import RenderJob
from dnft.timeline import job_action
from regenerator.metadata import render_request
from regenerator.steps.jobs import LookedUp, ToAnnounce, ToCopy, ToRender

log = structlog.get_logger("dnft.regenerator.render")

# Per job: the token's current state, its newest version (what a re-announcement sends), the
# image of its newest version of the job's state (a returning state copies it) and whether
# the job left candidates (held for review, rejected, failed its guardrails: all of a job's
# attempts are recorded in one transaction, so a re-delivered job never renders twice).
_LOOKUP = (
    "select k.i, t.state, t.state_hash, n.version, n.state_hash as newest_state, "
    "n.metadata_sha256, n.metadata_cid, n.image_sha256, n.created_at, "
    "e.image_sha256 as earlier_image, exists (select 1 from curation_candidates c "
    "where c.collection = k.collection and c.token_id = k.token_id "
    "and c.state_hash = k.state_hash and c.job_seed = k.seed) as tried "
    "from unnest($1::text[], $2::numeric[], $3::text[], $4::bigint[]) with ordinality "
    "as k(collection, token_id, state_hash, seed, i) "
    "left join regen_tokens t on t.collection = k.collection and t.token_id = k.token_id "
    "left join lateral (select v.version, v.state_hash, v.metadata_sha256, v.metadata_cid, "
    "v.image_sha256, v.created_at from token_versions v where v.collection = k.collection "
    "and v.token_id = k.token_id order by v.version desc limit 1) n on true "
    "left join lateral (select v.image_sha256 from token_versions v "
    "where v.collection = k.collection and v.token_id = k.token_id "
    "and v.state_hash = k.state_hash order by v.version desc limit 1) e on true"
)

# A job's identity within a batch: (collection, token, state, seed).
_Key = tuple[str, int, str, int]


async def look_up(
    pool: asyncpg.Pool,
    collections: Mapping[str, BoundCollection],
    jobs: Sequence[RenderJob],
) -> LookedUp:
    """Each job's action after one lookup of every job's token (in job order)."""
    known: dict[_Key, tuple[BoundCollection, RenderJob]] = {}
    for job in jobs:
        bound = collections.get(job.collection)
        if bound is None:
            log.warning("job for an unknown collection", collection=job.collection)
            continue
        key = (bound.collection.name, job.token_id, job.state_hash, job.seed)
        known.setdefault(key, (bound, job))  # a re-delivered job: render it once
    keys = list(known)
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            _LOOKUP,
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] for k in keys],
            [k[3] for k in keys],
        )
    out = LookedUp()
    for row in sorted(rows, key=lambda r: int(r["i"])):
        key = keys[int(row["i"]) - 1]
        name, token_id, state_hash, _ = key
        bound, job = known[key]
        action = job_action(
            state_hash,
            current_state=row["state_hash"],
            newest_state=row["newest_state"],
            had_state=row["earlier_image"] is not None,
            tried=row["tried"],
        )
        if action == "announce":
            out.announce.append(ToAnnounce(bound, token_id, row))
        elif action == "copy":
            out.copy.append(ToCopy(bound, job, row["earlier_image"]))
        elif action == "stale":
            metrics.renders_total.labels(name, "stale").inc()
            log.info("stale render job skipped", collection=name, token=token_id)
        elif action == "render":
            out.render.append(_to_render(bound, job, row))
        # "handled": held for review, rejected or failed: nothing to render or announce
    return out


def _to_render(bound: BoundCollection, job: RenderJob, row: asyncpg.Record) -> ToRender:
    body = orjson.loads(row["state"])
    state = TokenState(job.token_id, body["traits"], body["stage"])
    assert state.state_hash == job.state_hash, "stored state does not match its hash"
    return ToRender(bound, job, state, render_request(bound.collection, state, job.seed))
