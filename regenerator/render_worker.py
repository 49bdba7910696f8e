"""Render workers: render jobs in, stored images + metadata and metadata updates out.

Workers run in their own consumer group on ``dnft.render.jobs.v1`` (keyed by token, so one
token's jobs reach one worker in order); add workers (GPU pods) to render faster. A batch of
jobs is:

1. looked up in one query: a job is skipped when stale (the token's state moved on: a newer
   job follows) or already rendered (a version exists for its state: the update is
   re-published, which consumers dedupe), so at most one job per token is left;
2. rendered in chunks of the renderer's batch size (one ``render_batch`` call per chunk, off
   the event loop: a diffusion pipeline renders a chunk in one call on the GPU);
3. stored: image and metadata JSON, content-addressed (sha256 + CIDv1);
4. recorded: a new version, unique per (token, state_hash), in one statement;
5. announced on ``dnft.metadata.updates.v1``.

The caller commits the jobs' offsets after :meth:`RenderWorker.handle` returns.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import structlog

from dnft import metrics
from dnft.kafka import AsyncProducer, OutgoingMessage
from regenerator.metadata import bucket_of, build_metadata, render_prompt
from regenerator.planner import BoundCollection
from regenerator.renderers.base import Renderer, RenderRequest, RenderResult
from regenerator.state import TokenState
from regenerator.storage import BlobStore, StoredBlob
from schemas import METADATA_UPDATE_V1, validate_metadata

log = structlog.get_logger("dnft.regenerator.render")

# Chunks in flight at once: one renders while the one before it is stored and recorded.
CONCURRENT_CHUNKS = 2
# Chunk size for renderers that do not say how many requests one call should take.
DEFAULT_CHUNK = 8

_LOOKUP = (
    "select k.i, t.state, t.state_hash, v.version, v.metadata_sha256, v.metadata_cid, "
    "v.image_sha256, v.created_at "
    "from unnest($1::text[], $2::numeric[], $3::text[]) with ordinality "
    "as k(collection, token_id, state_hash, i) "
    "left join token_versions v on v.collection = k.collection "
    "and v.token_id = k.token_id and v.state_hash = k.state_hash "
    "left join regen_tokens t on t.collection = k.collection and t.token_id = k.token_id"
)
_INSERT_VERSION = (
    "insert into token_versions (collection, token_id, version, state_hash, state, "
    "image_sha256, image_cid, metadata_sha256, metadata_cid, metadata, triggered_by) "
    "select $1, $2, coalesce(max(version), 0) + 1, $3, $4, $5, $6, $7, $8, $9, $10 "
    "from token_versions where collection = $1 and token_id = $2 "
    "on conflict (collection, token_id, state_hash) do nothing "
    "returning version, metadata_sha256, metadata_cid, image_sha256, created_at"
)


@dataclass(frozen=True, slots=True)
class _Pending:
    """A job that needs rendering: its token's current state is the job's state."""

    bound: BoundCollection
    job: Mapping[str, Any]
    state: TokenState
    request: RenderRequest


class RenderWorker:
    def __init__(
        self,
        pool: asyncpg.Pool,
        producer: AsyncProducer,
        store: BlobStore,
        collections: Sequence[BoundCollection],
        renderers: Mapping[str, Renderer],
        *,
        updates_topic: str,
        public_url: str,
    ) -> None:
        self._pool = pool
        self._producer = producer
        self._store = store
        self._collections = {c.collection.name: c for c in collections}
        self._renderers = renderers  # by collection name
        self._topic = updates_topic
        self._public_url = public_url.rstrip("/")

    async def handle(self, jobs: Sequence[Mapping[str, Any]]) -> list[int]:
        """Process a batch of render jobs; returns the versions created. Raises on failure
        (nothing is committed then; every step is idempotent, so a retry is safe).

        Only a token's current state renders, so a batch renders at most one version per
        token, and a token's versions are numbered in state order.
        """
        announcements: list[OutgoingMessage] = []
        pending = await self._pending(jobs, announcements)
        chunks: list[list[_Pending]] = []
        for name in dict.fromkeys(p.bound.collection.name for p in pending):
            of_collection = [p for p in pending if p.bound.collection.name == name]
            size = max(1, int(getattr(self._renderers[name], "max_batch", DEFAULT_CHUNK)))
            chunks += [of_collection[i : i + size] for i in range(0, len(of_collection), size)]
        created: list[int] = []
        slots = asyncio.Semaphore(CONCURRENT_CHUNKS)

        async def run(chunk: list[_Pending]) -> None:
            async with slots:
                created.extend(await self._render_chunk(chunk, announcements))

        await asyncio.gather(*(run(chunk) for chunk in chunks))
        # One produce for the batch, acknowledged before the caller commits the offsets.
        await self._producer.send_many(announcements)
        return created

    async def _pending(
        self, jobs: Sequence[Mapping[str, Any]], announcements: list[OutgoingMessage]
    ) -> list[_Pending]:
        """The jobs to render, after one lookup of every job's token; queues the
        re-announcements of states that already have a version."""
        known: dict[tuple[str, int, str], tuple[BoundCollection, Mapping[str, Any]]] = {}
        for job in jobs:
            bound = self._collections.get(str(job["collection"]))
            if bound is None:
                log.warning("job for an unknown collection", collection=job["collection"])
                continue
            key = (bound.collection.name, int(job["token_id"]), str(job["state_hash"]))
            known.setdefault(key, (bound, job))  # a re-delivered job: render it once
        keys = list(known)
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                _LOOKUP, [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]
            )
        pending: list[_Pending] = []
        for row in sorted(rows, key=lambda r: int(r["i"])):
            name, token_id, state_hash = keys[int(row["i"]) - 1]
            bound, job = known[(name, token_id, state_hash)]
            if row["version"] is not None:
                announcements.append(self._announcement(bound, token_id, row))
                continue
            if row["state_hash"] != state_hash:
                metrics.renders_total.labels(name, "stale").inc()
                log.info("stale render job skipped", collection=name, token=token_id)
                continue
            body = orjson.loads(row["state"])
            state = TokenState(token_id, body["traits"], body["stage"])
            assert state.state_hash == state_hash, "stored state does not match its hash"
            _, bucket = bucket_of(bound.collection, state)
            request = RenderRequest(
                token_id=token_id,
                traits=state.traits,
                stage=state.stage,
                bucket=bucket,
                seed=int(job["seed"]),
                prompt=render_prompt(bound.collection, state),
                size=bound.collection.image_size,
                params=bound.collection.renderer.params,
            )
            pending.append(_Pending(bound, job, state, request))
        return pending

    async def _render_chunk(
        self, chunk: list[_Pending], announcements: list[OutgoingMessage]
    ) -> list[int]:
        """Render one chunk in one renderer call, store and record each version."""
        name = chunk[0].bound.collection.name
        renderer = self._renderers[name]
        started = time.perf_counter()
        try:
            results = await asyncio.to_thread(renderer.render_batch, [p.request for p in chunk])
        except Exception:
            metrics.renders_total.labels(name, "failed").inc(len(chunk))
            raise
        each = (time.perf_counter() - started) / len(chunk)
        for _ in chunk:
            metrics.render_seconds.labels(renderer.name).observe(each)
        stored = await asyncio.to_thread(self._store_versions, chunk, results)
        created: list[int] = []
        async with self._pool.acquire() as conn:
            for p, (image, meta, meta_bytes) in zip(chunk, stored, strict=True):
                row = await conn.fetchrow(
                    _INSERT_VERSION,
                    name,
                    p.state.token_id,
                    p.state.state_hash,
                    p.state.canonical().decode(),
                    image.sha256,
                    image.cid,
                    meta.sha256,
                    meta.cid,
                    meta_bytes.decode(),
                    orjson.dumps(p.job.get("triggered_by") or []).decode(),
                )
                if row is None:  # another delivery of this job won the race: nothing new
                    continue
                metrics.renders_total.labels(name, "rendered").inc()
                announcements.append(self._announcement(p.bound, p.state.token_id, row))
                planned = p.job.get("planned_at")
                if isinstance(planned, str):
                    lag = datetime.now(UTC) - datetime.fromisoformat(planned)
                    metrics.plan_to_metadata_seconds.observe(max(0.0, lag.total_seconds()))
                log.info(
                    "version created",
                    collection=name,
                    token=p.state.token_id,
                    state=p.state.state_hash[:12],
                    version=row["version"],
                    image=image.sha256[:12],
                )
                created.append(int(row["version"]))
        return created

    def _store_versions(
        self, chunk: list[_Pending], results: list[RenderResult]
    ) -> list[tuple[StoredBlob, StoredBlob, bytes]]:
        """Store each image, then its metadata JSON. Blocks (hashing, file or S3 I/O): one
        worker-thread hop for the chunk."""
        return [
            self._store_version(p.bound, p.state, result, p.job, p.request.prompt)
            for p, result in zip(chunk, results, strict=True)
        ]

    def _store_version(
        self,
        bound: BoundCollection,
        state: TokenState,
        result: RenderResult,
        job: Mapping[str, Any],
        prompt: str,
    ) -> tuple[StoredBlob, StoredBlob, bytes]:
        """Store the image, then its metadata JSON. Blocks (hashing, file or S3 I/O): one
        worker-thread hop for both."""
        image = self._store.put(result.png, "image/png")
        document = build_metadata(
            bound.collection,
            state,
            result,
            image_uri=f"{self._public_url}/images/{image.sha256}",
            image_cid=image.cid,
            triggered_by=list(job.get("triggered_by") or []),
            prompt=prompt,
        )
        validate_metadata(document)
        meta_bytes = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
        return image, self._store.put(meta_bytes, "application/json"), meta_bytes

    def _announcement(
        self, bound: BoundCollection, token_id: int, row: asyncpg.Record
    ) -> OutgoingMessage:
        """The metadata update of a version (re-announcing one is harmless: consumers dedupe
        by (contract, token, version))."""
        body = {
            "schema": METADATA_UPDATE_V1,
            "collection": bound.collection.name,
            "chain_id": bound.chain_id,
            "contract": bound.contract,
            "token_id": str(token_id),
            "version": int(row["version"]),
            "metadata_uri": f"{self._public_url}/tokens/{token_id}/versions/{row['version']}",
            "metadata_sha256": row["metadata_sha256"],
            "metadata_cid": row["metadata_cid"],
            "image_sha256": row["image_sha256"],
            "created_at": row["created_at"].astimezone(UTC).isoformat(),
        }
        key = f"{bound.chain_id}:{bound.contract}:{token_id}".encode()
        return OutgoingMessage(self._topic, orjson.dumps(body), key=key)
