"""Curator decisions in Postgres, and the outbox that sends what they imply.

A *candidate* is a render that did not go straight to ``token_versions`` (which holds public
versions only, numbered in the order they became public): a render that failed a guardrail,
one held for review (``pending``), one a curator rejected, one superseded (by a newer render
of the token, or by a re-roll). Statuses move only forward::

    guardrail_failed --reroll--> superseded        pending --approve--> public
    guardrail_failed --reject--> rejected          pending --reject---> rejected
                                                   pending --reroll---> superseded

Approving inserts the candidate as the token's next public version (unless the token's state
has changed since, or its newest version already has that state: the candidate is then
superseded; ``dnft.timeline.versions``), in the same transaction as the decision and an outbox
row holding its metadata update (built by ``dnft.timeline.announce``, as the render worker
builds the updates of auto-published versions); a re-roll writes a render job with a new seed
to the outbox. :func:`flush_outbox` sends what a committed decision left there. Deciding again
on a decided candidate changes nothing (the decision is still recorded, with its outcome). A
token back in a state that was public before is not reviewed again: the render worker copies
that state's earlier version.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg
import orjson

from dnft.collection import BoundCollection, reroll_seed
from dnft.kafka import AsyncProducer, OutgoingMessage
from dnft.timeline.announce import metadata_update, update_key
from dnft.timeline.arthash import set_art_hash
from dnft.timeline.versions import NewVersion, insert_version, newest_version
from schemas import RENDER_JOB_V1

Action = Literal["approve", "reject", "reroll"]
ACTIONS: tuple[Action, ...] = ("approve", "reject", "reroll")
# Which statuses each action applies to; on any other the decision is a recorded no-op.
_APPLIES: dict[str, tuple[str, ...]] = {
    "approve": ("pending",),
    "reject": ("pending", "guardrail_failed"),
    "reroll": ("pending", "guardrail_failed"),
}
OUTBOX_BATCH = 500


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one decision did: ``changed`` is False for a no-op (unknown or already decided)."""

    candidate_id: int
    action: str
    changed: bool
    detail: str
    version: int | None = None


class Curator:
    """Applies curator decisions. Each candidate is decided in its own transaction (a bulk
    decision is many; one failing leaves the others done). Raises what asyncpg raises."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        collections: Sequence[BoundCollection],
        *,
        public_url: str,
        topics: Mapping[str, str],
    ) -> None:
        self._pool = pool
        self._collections = {c.collection.name: c for c in collections}
        self._public_url = public_url.rstrip("/")
        # Outbox topic names by kind: {"metadata_updates": ..., "render_jobs": ...}.
        self._topics = dict(topics)

    async def decide(
        self, action: Action, ids: Sequence[int], *, curator: str, note: str = ""
    ) -> list[Outcome]:
        """Apply ``action`` to each candidate of ``ids`` and record each decision (commits).
        Messages the decisions need are in the outbox: call :func:`flush_outbox` next."""
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; known: {ACTIONS}")
        outcomes = []
        for candidate_id in dict.fromkeys(ids):
            async with self._pool.acquire() as conn, conn.transaction():
                outcome = await self._decide_one(conn, action, candidate_id)
                if outcome.detail != "no such candidate":
                    await conn.execute(
                        "insert into curation_decisions (candidate_id, action, curator, note, "
                        "outcome) values ($1, $2, $3, $4, $5)",
                        candidate_id,
                        action,
                        curator,
                        note,
                        outcome.detail,
                    )
            outcomes.append(outcome)
        return outcomes

    async def _decide_one(
        self, conn: asyncpg.Connection, action: Action, candidate_id: int
    ) -> Outcome:
        row = await conn.fetchrow(
            "select * from curation_candidates where id = $1 for update", candidate_id
        )
        if row is None:
            return Outcome(candidate_id, action, False, "no such candidate")
        if row["status"] not in _APPLIES[action]:
            return Outcome(candidate_id, action, False, f"no change: already {row['status']}")
        bound = self._collections.get(row["collection"])
        if bound is None:
            return Outcome(candidate_id, action, False, "no change: collection not configured")
        token_id = int(row["token_id"])
        if action == "reject":
            await self._set_status(conn, candidate_id, "rejected")
            return Outcome(candidate_id, action, True, "rejected")
        if action == "reroll":
            return await self._reroll(conn, bound, row)
        return await self._approve(conn, bound, token_id, row)

    async def _set_status(
        self,
        conn: asyncpg.Connection,
        candidate_id: int,
        status: str,
        *,
        version: int | None = None,
        reason: str | None = None,
    ) -> None:
        await conn.execute(
            "update curation_candidates set status = $2, version = $3, decided_at = now(), "
            "reasons = case when $4::text is null then reasons "
            "else reasons || jsonb_build_array(jsonb_build_object('check', $2::text, "
            "'reason', $4::text)) end where id = $1",
            candidate_id,
            status,
            version,
            reason,
        )

    async def _approve(
        self, conn: asyncpg.Connection, bound: BoundCollection, token_id: int, row: Any
    ) -> Outcome:
        name = bound.collection.name
        current = await conn.fetchval(
            "select state_hash from regen_tokens where collection = $1 and token_id = $2",
            name,
            token_id,
        )
        if current != row["state_hash"]:
            # Publishing it would make the token's newest version a state it has left.
            detail = "superseded: the token's state changed since this render"
            await self._set_status(conn, row["id"], "superseded", reason=detail)
            return Outcome(row["id"], "approve", False, detail)
        created = await insert_version(
            conn,
            NewVersion(
                name,
                token_id,
                row["state_hash"],
                row["state"],
                row["image_sha256"],
                row["image_cid"],
                row["metadata_sha256"],
                row["metadata_cid"],
                row["metadata"],
                row["triggered_by"],
            ),
        )
        if created is None:
            newest = await newest_version(conn, name, token_id)
            public = None if newest is None else newest["version"]
            detail = f"superseded: this state is already the token's newest version ({public})"
            await self._set_status(conn, row["id"], "superseded", reason=detail)
            return Outcome(row["id"], "approve", False, detail)
        version = int(created["version"])
        await self._set_status(conn, row["id"], "public", version=version)
        if row["phash"] is not None:
            await set_art_hash(conn, name, token_id, version, int(row["phash"]))
        update = metadata_update(
            bound,
            token_id,
            created,
            public_url=self._public_url,
            topic="metadata_updates",
        )
        await _to_outbox(conn, "metadata_updates", update)
        return Outcome(row["id"], "approve", True, f"public as version {version}", version)

    async def _reroll(self, conn: asyncpg.Connection, bound: BoundCollection, row: Any) -> Outcome:
        seed = reroll_seed(int(row["job_seed"]), int(row["id"]))
        await self._set_status(
            conn, row["id"], "superseded", reason=f"re-rolled: re-rendering with seed {seed}"
        )
        token_id = int(row["token_id"])
        body = {
            "schema": RENDER_JOB_V1,
            "job_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"reroll/{row['id']}/{seed}")),
            "collection": bound.collection.name,
            "chain_id": bound.chain_id,
            "contract": bound.contract,
            "token_id": str(token_id),
            "state_hash": row["state_hash"],
            "seed": seed,
            "triggered_by": orjson.loads(row["triggered_by"]),
            "planned_at": datetime.now(UTC).isoformat(),
        }
        job = OutgoingMessage("render_jobs", orjson.dumps(body), key=update_key(bound, token_id))
        await _to_outbox(conn, "render_jobs", job)
        return Outcome(row["id"], "reroll", True, f"re-rendering with seed {seed}")


async def _to_outbox(conn: asyncpg.Connection, kind: str, message: OutgoingMessage) -> None:
    await conn.execute(
        "insert into curation_outbox (topic, key, body) values ($1, $2, $3)",
        kind,
        (message.key or b"").decode(),
        message.value.decode(),
    )


async def flush_outbox(
    pool: asyncpg.Pool, producer: AsyncProducer, topics: Mapping[str, str]
) -> int:
    """Send every unsent outbox message (oldest first) and mark them sent; returns how many.
    Rows are locked while being sent (``skip locked``: replicas flushing at once send each
    row once); a failed send leaves them unsent for the next flush. Raises KafkaError."""
    sent = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "select id, topic, key, body from curation_outbox where sent_at is null "
                "order by id limit $1 for update skip locked",
                OUTBOX_BATCH,
            )
            if not rows:
                return sent
            await producer.send_many(
                [
                    OutgoingMessage(topics[r["topic"]], r["body"].encode(), key=r["key"].encode())
                    for r in rows
                ]
            )
            await conn.execute(
                "update curation_outbox set sent_at = now() where id = any($1::bigint[])",
                [r["id"] for r in rows],
            )
        sent += len(rows)
