"""The planner: chain events and feed observations in, token states and render jobs out.

It consumes typed messages (``ChainEvent | ChainRetraction | OracleObservation``, decoded by
``dnft.stream.message_decoder``). One batch of them is applied in one Postgres transaction:

* a chain event is stored once per event id (a duplicate changes nothing);
* a retraction deletes the event it names (the token's state is then recomputed without it);
* an observation updates its feed's value when its round is newer;
* a chain event of no single token (``token_id`` null: ``token: none`` in dnft.yaml) that the
  collection's rules read is collection-wide: stored once under COLLECTION_WIDE, it is part of
  every token's events, and every token of that collection is recomputed (as for a feed);
  one that no rule reads cannot change a state and is ignored;
* every token touched, and every token of a collection bound to a changed feed, has its state
  recomputed; where the ``state_hash`` changed, a render job is recorded in the outbox (a
  state the token had before has its job planned again: every change is a new version).

Only after that transaction commits are the jobs sent to ``dnft.render.jobs.v1`` (keyed by
token, so a token's jobs stay in order) and marked sent; unsent jobs are re-sent at start.
The caller commits Kafka offsets after :meth:`Planner.apply` returns.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from decimal import Decimal
from typing import TypeAlias

import asyncpg
import orjson
import structlog

from dnft import metrics
from dnft.collection import BoundCollection, TokenEvent, TokenState, derive_seed, derive_state
from dnft.kafka import AsyncProducer, OutgoingMessage
from dnft.messages import ChainEvent, ChainRetraction, OracleObservation
from schemas import RENDER_JOB_V1

log = structlog.get_logger("dnft.regenerator.planner")

# What the planner consumes (decoded by ``dnft.stream.message_decoder``).
PlannerInput: TypeAlias = ChainEvent | ChainRetraction | OracleObservation


def _count(kind: str, outcome: str) -> None:
    metrics.regen_events_total.labels(kind, outcome).inc()


# Tokens recomputed per query when a feed change fans out to a whole collection.
FANOUT_BATCH = 1000

# The regen_events token id of a collection-wide event: token ids are uint256, never negative.
COLLECTION_WIDE = -1

# Collections whose every token (each one the planner has a state for) is recomputed, with the
# triggers: a changed feed, a collection-wide event stored or retracted.
_Fanout = dict[str, list[str]]


@dataclass(frozen=True, slots=True)
class PlannedJob:
    collection: str
    chain_id: int
    contract: str
    token_id: int
    state_hash: str
    seed: int
    triggered_by: list[str]


class Planner:
    def __init__(
        self,
        pool: asyncpg.Pool,
        producer: AsyncProducer,
        collections: Sequence[BoundCollection],
        *,
        jobs_topic: str,
    ) -> None:
        self._pool = pool
        self._producer = producer
        self._jobs_topic = jobs_topic
        self._by_contract = {(c.chain_id, c.contract): c for c in collections}
        self._by_name = {c.collection.name: c for c in collections}
        self._by_feed: dict[str, list[BoundCollection]] = defaultdict(list)
        for bound in collections:
            for feed in bound.collection.feeds:
                self._by_feed[feed].append(bound)
        # Per collection, the events its rules read: only those can change a token's state.
        self._reads = {c.collection.name: c.collection.read_events for c in collections}

    async def apply(self, messages: Sequence[PlannerInput]) -> list[PlannedJob]:
        """Apply a batch, plan its render jobs and send them; returns the jobs planned.

        Raises on Postgres or Kafka failure; the batch can then be applied again (every
        step is idempotent), so the caller must not commit its offsets.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            await self._lock_collections(conn, messages)
            touched, triggers, fanout = await self._store(conn, messages)
            for name, reasons in fanout.items():
                rows = await conn.fetch(
                    "select token_id from regen_tokens where collection = $1", name
                )
                for row in rows:
                    key = (name, int(row["token_id"]))
                    touched.add(key)
                    triggers[key].extend(reasons)
            jobs = await self._recompute(conn, touched, triggers)
        await self.send_pending()
        return jobs

    async def recompute(
        self, conn: asyncpg.Connection, keys: Iterable[tuple[str, int]], trigger: str
    ) -> list[PlannedJob]:
        """Recompute the state of ``keys`` (collection name, token id) inside the caller's
        transaction, e.g. after a collection's rules changed; plans a job for each state that
        changed. Sends nothing: call ``send_pending`` after the commit."""
        keys = list(keys)
        await _lock(conn, {name: True for name, _ in keys})
        triggers: defaultdict[tuple[str, int], list[str]] = defaultdict(list)
        for key in keys:
            triggers[key].append(trigger)
        return await self._recompute(conn, keys, triggers)

    async def _lock_collections(
        self, conn: asyncpg.Connection, messages: Sequence[PlannerInput]
    ) -> None:
        """Lock the batch's collections against other planner replicas until the commit.

        Replicas consume different partitions: one may store token 5's event while another
        applies a feed change (or a collection-wide event) and recomputes every token,
        token 5 included, from a snapshot without that event; whichever state is written
        last wins and the other input is lost. A batch that recomputes a whole collection
        takes its lock exclusively, one that touches single tokens shares it (their tokens
        are disjoint across replicas: a token's messages share a partition), so per-token
        work stays parallel and a fan-out sees every committed event."""
        modes: dict[str, bool] = {}  # collection -> exclusive
        for m in messages:
            if isinstance(m, OracleObservation):
                for fed in self._by_feed.get(m.feed_id, []):
                    modes[fed.collection.name] = True
                continue
            bound = self._by_contract.get((m.chain_id, m.contract))
            if bound is not None:
                name = bound.collection.name
                modes[name] = modes.get(name, False) or m.token_id is None
        await _lock(conn, modes)

    async def _store(
        self, conn: asyncpg.Connection, messages: Sequence[PlannerInput]
    ) -> tuple[set[tuple[str, int]], defaultdict[tuple[str, int], list[str]], _Fanout]:
        """Store the batch; returns the tokens touched, their triggers, and the collections
        whose every token must be recomputed (a changed feed, a collection-wide event)."""
        touched: set[tuple[str, int]] = set()
        triggers: defaultdict[tuple[str, int], list[str]] = defaultdict(list)
        fanout: defaultdict[str, list[str]] = defaultdict(list)
        for m in messages:
            if isinstance(m, OracleObservation):
                changed = await conn.fetchval(
                    "insert into regen_feed_values (feed_id, round_id, value, observed_at) "
                    "values ($1, $2, $3, $4) on conflict (feed_id) do update set "
                    "round_id = excluded.round_id, value = excluded.value, "
                    "observed_at = excluded.observed_at "
                    "where regen_feed_values.round_id < excluded.round_id returning true",
                    m.feed_id,
                    m.round_id,
                    m.value,
                    m.observed_at,
                )
                if changed:
                    for fed in self._by_feed.get(m.feed_id, []):
                        reasons = fanout[fed.collection.name]
                        if f"feed:{m.feed_id}" not in reasons:  # newer rounds in one batch
                            reasons.append(f"feed:{m.feed_id}")
                _count("observation", "applied" if changed else "duplicate")
                continue
            bound = self._by_contract.get((m.chain_id, m.contract))
            kind = "event" if isinstance(m, ChainEvent) else "retraction"
            if bound is None or (
                isinstance(m, ChainEvent)
                and m.token_id is None
                and m.event not in self._reads[bound.collection.name]
            ):
                # Another contract, or an event of no single token that no rule reads (a
                # retraction always deletes: the rules may have changed since its event).
                _count(kind, "ignored")
                continue
            wide = m.token_id is None
            key = (bound.collection.name, COLLECTION_WIDE if m.token_id is None else m.token_id)
            if isinstance(m, ChainEvent):
                status = await conn.execute(
                    "insert into regen_events (collection, token_id, event_id, event, args, "
                    "block_number, log_index, block_timestamp) values ($1,$2,$3,$4,$5,$6,$7,$8) "
                    "on conflict do nothing",
                    key[0],
                    key[1],
                    m.event_id,
                    m.event,
                    orjson.dumps(m.args).decode(),
                    m.block_number,
                    m.log_index,
                    m.block_timestamp,
                )
                if status.endswith(" 1"):
                    _touch(key, m.event_id, wide, touched, triggers, fanout)
                _count(kind, "applied" if status.endswith(" 1") else "duplicate")
            else:
                status = await conn.execute(
                    "delete from regen_events where collection = $1 and event_id = $2",
                    key[0],
                    m.event_id,
                )
                if status.endswith(" 1"):
                    _touch(key, f"retracted:{m.event_id}", wide, touched, triggers, fanout)
                _count(kind, "applied" if status.endswith(" 1") else "duplicate")
        return touched, triggers, fanout

    async def _recompute(
        self,
        conn: asyncpg.Connection,
        touched: Iterable[tuple[str, int]],
        triggers: Mapping[tuple[str, int], list[str]],
    ) -> list[PlannedJob]:
        by_collection: defaultdict[str, list[int]] = defaultdict(list)
        for name, token_id in touched:
            by_collection[name].append(token_id)
        feed_rows = await conn.fetch("select feed_id, value from regen_feed_values")
        feed_values = {r["feed_id"]: Decimal(r["value"]) for r in feed_rows}
        jobs: list[PlannedJob] = []
        for name, tokens in by_collection.items():
            bound = self._by_name[name]
            for start in range(0, len(tokens), FANOUT_BATCH):
                part = sorted(tokens)[start : start + FANOUT_BATCH]
                jobs.extend(await self._recompute_tokens(conn, bound, part, feed_values, triggers))
        return jobs

    async def _recompute_tokens(
        self,
        conn: asyncpg.Connection,
        bound: BoundCollection,
        tokens: list[int],
        feeds: Mapping[str, Decimal],
        triggers: Mapping[tuple[str, int], list[str]],
    ) -> list[PlannedJob]:
        name = bound.collection.name
        events: defaultdict[int, list[TokenEvent]] = defaultdict(list)
        for r in await conn.fetch(
            "select token_id, event_id, event, args, block_number, log_index, block_timestamp "
            "from regen_events where collection = $1 "
            "and (token_id = any($2::numeric[]) or token_id = $3)",
            name,
            tokens,
            COLLECTION_WIDE,
        ):
            events[int(r["token_id"])].append(
                TokenEvent(
                    r["event_id"],
                    r["event"],
                    orjson.loads(r["args"]),
                    r["block_number"],
                    r["log_index"],
                    r["block_timestamp"],
                )
            )
        current = {
            int(r["token_id"]): r["state_hash"]
            for r in await conn.fetch(
                "select token_id, state_hash from regen_tokens where collection = $1 "
                "and token_id = any($2::numeric[])",
                name,
                tokens,
            )
        }
        wide = events.pop(COLLECTION_WIDE, [])  # every token's, in chain order with its own
        states: list[TokenState] = []
        for token_id in tokens:
            state = derive_state(bound.collection, token_id, events[token_id] + wide, feeds)
            if current.get(token_id) != state.state_hash:
                states.append(state)
        if not states:
            return []
        await conn.executemany(
            "insert into regen_tokens (collection, token_id, state, state_hash) "
            "values ($1, $2, $3, $4) on conflict (collection, token_id) do update set "
            "state = excluded.state, state_hash = excluded.state_hash, updated_at = now()",
            [(name, s.token_id, s.canonical().decode(), s.state_hash) for s in states],
        )
        candidates = {
            s.token_id: PlannedJob(
                name,
                bound.chain_id,
                bound.contract,
                s.token_id,
                s.state_hash,
                derive_seed(bound.collection.salt, s.token_id, s.state_hash),
                triggers.get((name, s.token_id), []),
            )
            for s in states
        }
        # A state the token had before (e.g. restored by a retraction, or a feed back in its
        # old bucket) is planned again: the worker publishes it as a new version, a copy of
        # the earlier one (versions are the token's timeline).
        rows = await conn.fetch(
            "insert into regen_render_jobs (collection, token_id, state_hash, seed, triggered_by) "
            "select $1, * from unnest($2::numeric[], $3::text[], $4::bigint[], $5::jsonb[]) "
            "on conflict (collection, token_id, state_hash) do update set sent_at = null, "
            "planned_at = now(), triggered_by = excluded.triggered_by returning token_id",
            name,
            [j.token_id for j in candidates.values()],
            [j.state_hash for j in candidates.values()],
            [j.seed for j in candidates.values()],
            [orjson.dumps(j.triggered_by).decode() for j in candidates.values()],
        )
        metrics.regen_jobs_planned_total.labels(name).inc(len(rows))
        return [candidates[int(r["token_id"])] for r in rows]

    async def send_pending(self) -> int:
        """Send every planned job Kafka has not acknowledged yet; returns how many."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "select collection, token_id, state_hash, seed, triggered_by, planned_at "
                "from regen_render_jobs where sent_at is null order by planned_at"
            )
            if not rows:
                return 0
            messages = [self._job_message(r) for r in rows]
            await self._producer.send_many(messages)
            await conn.executemany(
                "update regen_render_jobs set sent_at = now() where collection = $1 "
                "and token_id = $2 and state_hash = $3",
                [(r["collection"], r["token_id"], r["state_hash"]) for r in rows],
            )
        return len(rows)

    def _job_message(self, row: asyncpg.Record) -> OutgoingMessage:
        bound = self._by_name[row["collection"]]
        token = str(int(row["token_id"]))
        body = {
            "schema": RENDER_JOB_V1,
            # Deterministic: a planned job keeps its id however often it is sent; planned again
            # (its state came back, or `dnft rerender`) it is a new job.
            "job_id": str(
                uuid.uuid5(
                    uuid.NAMESPACE_URL,
                    f"{row['collection']}/{token}/{row['state_hash']}/"
                    f"{row['planned_at'].astimezone(UTC).isoformat()}",
                )
            ),
            "collection": row["collection"],
            "chain_id": bound.chain_id,
            "contract": bound.contract,
            "token_id": token,
            "state_hash": row["state_hash"],
            "seed": int(row["seed"]),
            "triggered_by": orjson.loads(row["triggered_by"]),
            "planned_at": row["planned_at"].astimezone(UTC).isoformat(),
        }
        key = f"{bound.chain_id}:{bound.contract}:{token}".encode()
        return OutgoingMessage(self._jobs_topic, orjson.dumps(body), key=key)


# The first key of the planner's per-collection locks (pg_advisory_xact_lock(int, int), a key
# space apart from leader election's and migrations' 64-bit keys): "dnfp".
_LOCK_CLASS = 0x646E6670


async def _lock(conn: asyncpg.Connection, modes: Mapping[str, bool]) -> None:
    """Take each collection's transaction lock, exclusive where ``modes`` says so, in key
    order (two batches never wait on each other in opposite orders). Two names whose keys
    collide take one lock, exclusive if either needs it (never both modes on one key)."""
    keys: dict[int, bool] = {}
    for name, exclusive in modes.items():
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big", signed=True)
        keys[key] = keys.get(key, False) or exclusive
    for key in sorted(keys):
        function = "pg_advisory_xact_lock" if keys[key] else "pg_advisory_xact_lock_shared"
        await conn.execute(f"select {function}($1, $2)", _LOCK_CLASS, key)


def _touch(
    key: tuple[str, int],
    trigger: str,
    wide: bool,
    touched: set[tuple[str, int]],
    triggers: defaultdict[tuple[str, int], list[str]],
    fanout: defaultdict[str, list[str]],
) -> None:
    """Record a stored or deleted event: its token, or its whole collection when wide."""
    if wide:
        fanout[key[0]].append(trigger)
    else:
        touched.add(key)
        triggers[key].append(trigger)
