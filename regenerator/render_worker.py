"""Render workers: render jobs in, stored images + metadata and metadata updates out.

Workers run in their own consumer group on ``dnft.render.jobs.v1`` (keyed by token, so one
token's jobs reach one worker in order); add workers (GPU pods) to render faster. A job is:

1. skipped when stale (the token's state moved on: a newer job follows) or already rendered
   (a version exists for its state: the update is re-published, which consumers dedupe);
2. rendered off the event loop (``asyncio.to_thread``: rendering is CPU/GPU bound);
3. stored: image and metadata JSON, content-addressed (sha256 + CIDv1);
4. recorded: a new version, unique per (token, state_hash), in one statement;
5. announced on ``dnft.metadata.updates.v1``.

The caller commits the job's offset after :meth:`RenderWorker.handle` returns.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
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

# Tokens a worker handles at once: enough to keep the renderer busy while others wait for
# Postgres or storage; rendering itself stays CPU bound.
CONCURRENT_TOKENS = 4


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
        """Process render jobs; returns the versions created. Raises on failure (nothing is
        committed then; every step is idempotent, so a retry is safe).

        Jobs of different tokens overlap (one renders while another waits for Postgres);
        each token's jobs run in their order, so its versions are numbered in state order.
        """
        by_token: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
        for job in jobs:
            by_token.setdefault((str(job["collection"]), str(job["token_id"])), []).append(job)
        created: list[int] = []
        announcements: list[OutgoingMessage] = []
        slots = asyncio.Semaphore(CONCURRENT_TOKENS)

        async def run(token_jobs: list[Mapping[str, Any]]) -> None:
            async with slots:
                for job in token_jobs:
                    version = await self._handle(job, announcements)
                    if version is not None:
                        created.append(version)

        await asyncio.gather(*(run(token_jobs) for token_jobs in by_token.values()))
        # One produce for the batch, acknowledged before the caller commits the offsets.
        await self._producer.send_many(announcements)
        return created

    async def _handle(
        self, job: Mapping[str, Any], announcements: list[OutgoingMessage]
    ) -> int | None:
        bound = self._collections.get(str(job["collection"]))
        if bound is None:
            log.warning("job for an unknown collection", collection=job["collection"])
            return None
        name, token_id, state_hash = bound.collection.name, int(job["token_id"]), job["state_hash"]
        log_ = log.bind(collection=name, token=token_id, state=state_hash[:12])
        async with self._pool.acquire() as conn:
            # One round trip: the version this state may already have, and the current state.
            row = await conn.fetchrow(
                "select t.state, t.state_hash, v.version, v.metadata_sha256, v.metadata_cid, "
                "v.image_sha256, v.created_at "
                "from (select $1::text as collection, $2::numeric as token_id) k "
                "left join token_versions v on v.collection = k.collection "
                "and v.token_id = k.token_id and v.state_hash = $3 "
                "left join regen_tokens t on t.collection = k.collection "
                "and t.token_id = k.token_id",
                name,
                token_id,
                state_hash,
            )
        if row["version"] is not None:
            announcements.append(self._announcement(bound, token_id, row))
            return None
        if row["state_hash"] != state_hash:
            metrics.renders_total.labels(name, "stale").inc()
            log_.info("stale render job skipped")
            return None
        body = orjson.loads(row["state"])
        state = TokenState(token_id, body["traits"], body["stage"])
        assert state.state_hash == state_hash, "stored state does not match its hash"

        renderer = self._renderers[name]
        _, bucket = bucket_of(bound.collection, state)
        prompt = render_prompt(bound.collection, state)
        request = RenderRequest(
            token_id=token_id,
            traits=state.traits,
            stage=state.stage,
            bucket=bucket,
            seed=int(job["seed"]),
            prompt=prompt,
            size=bound.collection.image_size,
            params=bound.collection.renderer.params,
        )
        started = time.perf_counter()
        try:
            result = await asyncio.to_thread(renderer.render, request)
        except Exception:
            metrics.renders_total.labels(name, "failed").inc()
            raise
        metrics.render_seconds.labels(renderer.name).observe(time.perf_counter() - started)

        image, meta, meta_bytes = await asyncio.to_thread(
            self._store_version, bound, state, result, job, prompt
        )
        async with self._pool.acquire() as conn:
            created = await conn.fetchrow(
                "insert into token_versions (collection, token_id, version, state_hash, state, "
                "image_sha256, image_cid, metadata_sha256, metadata_cid, metadata, triggered_by) "
                "select $1, $2, coalesce(max(version), 0) + 1, $3, $4, $5, $6, $7, $8, $9, $10 "
                "from token_versions where collection = $1 and token_id = $2 "
                "on conflict (collection, token_id, state_hash) do nothing "
                "returning version, metadata_sha256, metadata_cid, image_sha256, created_at",
                name,
                token_id,
                state_hash,
                state.canonical().decode(),
                image.sha256,
                image.cid,
                meta.sha256,
                meta.cid,
                meta_bytes.decode(),
                orjson.dumps(job.get("triggered_by") or []).decode(),
            )
        if created is None:  # another delivery of this job won the race: nothing new
            return None
        metrics.renders_total.labels(name, "rendered").inc()
        announcements.append(self._announcement(bound, token_id, created))
        planned = job.get("planned_at")
        if isinstance(planned, str):
            lag = datetime.now(UTC) - datetime.fromisoformat(planned)
            metrics.plan_to_metadata_seconds.observe(max(0.0, lag.total_seconds()))
        log_.info("version created", version=created["version"], image=image.sha256[:12])
        return int(created["version"])

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
