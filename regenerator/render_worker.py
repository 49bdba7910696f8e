"""Render workers: render jobs in, stored images + metadata and metadata updates out.

Workers run in their own consumer group on ``dnft.render.jobs.v1`` (keyed by token, so one
token's jobs reach one worker in order); add workers (GPU pods) to render faster. A batch of
jobs is:

1. looked up in one query and decided by ``dnft.timeline.versions.job_action``: a job whose
   state is the token's newest version is re-announced (consumers dedupe); a job whose state
   the token is back in, after an earlier version of it, gets a new version copied from that
   one (no render, no review: it was public before; announced as any new version); a job
   held for review or already failed is done; a stale one (the token's state moved on: a
   newer job follows) is skipped; so at most one job per token is left to render;
2. rendered in chunks of the renderer's batch size (one ``render_batch`` call per chunk, off
   the event loop: a diffusion pipeline renders a chunk in one call on the GPU);
3. stored: image and metadata JSON, content-addressed (sha256 + CIDv1);
4. checked by the collection's guardrails (``regenerator.guardrails``: format, size, blank,
   near duplicate, metadata schema); a render that fails one is rendered again with the next
   seed, up to ``guardrails.max_attempts`` renders; each failed attempt is recorded with its
   reasons and counted in ``dnft_guardrail_rejections_total``, and the previous version
   stays public;
5. recorded, per job in one transaction: the failed attempts, then the token's next public
   version unless its newest one already has that state (``publish: auto``;
   ``dnft.timeline.versions``), or a candidate held for a curator (``publish: review``;
   ``regenerator.curation``);
6. announced on ``dnft.metadata.updates.v1``: public versions only (an approved one is
   announced by the approval).

The caller commits the jobs' offsets after :meth:`RenderWorker.handle` returns.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import structlog

from dnft import metrics
from dnft.collection.bound import BoundCollection
from dnft.collection.seeds import attempt_seed
from dnft.collection.state import TokenState
from dnft.errors import DecodeError
from dnft.kafka import AsyncProducer, OutgoingMessage
from dnft.storage.blobs import BlobIntegrityError, BlobNotFoundError, BlobStore, StoredBlob
from dnft.timeline.announce import metadata_update
from dnft.timeline.arthash import near_duplicates, set_art_hash
from dnft.timeline.candidates import NewCandidate, insert_candidate
from dnft.timeline.versions import NewVersion, copy_version, insert_version, job_action
from regenerator.guardrails import (
    Failure,
    ImageFacts,
    ImageLimits,
    check_image,
    check_metadata,
    duplicate_failure,
    measure_png,
)
from regenerator.metadata import build_metadata, render_request
from regenerator.renderers.base import Renderer, RenderRequest, RenderResult

log = structlog.get_logger("dnft.regenerator.render")

# Chunks in flight at once: one renders while the one before it is stored and recorded.
CONCURRENT_CHUNKS = 2
# Chunk size for renderers that do not say how many requests one call should take.
DEFAULT_CHUNK = 8

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


@dataclass(slots=True)
class _Checked:
    """One render attempt after its guardrails: what failed, and what was stored."""

    pending: _Pending
    request: RenderRequest  # with this attempt's seed
    attempt: int
    failures: list[Failure] = field(default_factory=list)
    facts: ImageFacts | None = None
    image: StoredBlob | None = None
    meta: StoredBlob | None = None
    meta_bytes: bytes = b""

    @property
    def phash(self) -> int:
        assert self.facts is not None
        return self.facts.phash


@dataclass(frozen=True, slots=True)
class _Pending:
    """A job that needs rendering: its token's current state is the job's state."""

    bound: BoundCollection
    job: Mapping[str, Any]
    state: TokenState
    request: RenderRequest


@dataclass(frozen=True, slots=True)
class _Copy:
    """A job whose state the token is back in: an earlier version of it is copied."""

    bound: BoundCollection
    job: Mapping[str, Any]
    token_id: int
    state_hash: str
    image_sha256: str  # the earlier version's image, for the art-hash index


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

        Only a token's current state renders or is copied, so a batch adds at most one
        version per token, and a token's versions are numbered in state order.
        """
        announcements: list[OutgoingMessage] = []
        pending, copies = await self._pending(jobs, announcements)
        created: list[int] = []
        for copy in copies:
            version = await self._copy(copy, announcements)
            if version is not None:
                created.append(version)
        chunks: list[list[_Pending]] = []
        for name in dict.fromkeys(p.bound.collection.name for p in pending):
            of_collection = [p for p in pending if p.bound.collection.name == name]
            size = max(1, int(getattr(self._renderers[name], "max_batch", DEFAULT_CHUNK)))
            chunks += [of_collection[i : i + size] for i in range(0, len(of_collection), size)]
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
    ) -> tuple[list[_Pending], list[_Copy]]:
        """The jobs to render and the versions to copy, after one lookup of every job's
        token; queues the re-announcements of states that are already the newest version."""
        known: dict[tuple[str, int, str, int], tuple[BoundCollection, Mapping[str, Any]]] = {}
        for job in jobs:
            bound = self._collections.get(str(job["collection"]))
            if bound is None:
                log.warning("job for an unknown collection", collection=job["collection"])
                continue
            key = (
                bound.collection.name,
                int(job["token_id"]),
                str(job["state_hash"]),
                int(job["seed"]),
            )
            known.setdefault(key, (bound, job))  # a re-delivered job: render it once
        keys = list(known)
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                _LOOKUP,
                [k[0] for k in keys],
                [k[1] for k in keys],
                [k[2] for k in keys],
                [k[3] for k in keys],
            )
        pending: list[_Pending] = []
        copies: list[_Copy] = []
        for row in sorted(rows, key=lambda r: int(r["i"])):
            name, token_id, state_hash, seed = keys[int(row["i"]) - 1]
            bound, job = known[(name, token_id, state_hash, seed)]
            action = job_action(
                state_hash,
                current_state=row["state_hash"],
                newest_state=row["newest_state"],
                had_state=row["earlier_image"] is not None,
                tried=row["tried"],
            )
            if action == "announce":
                announcements.append(self._announcement(bound, token_id, row))
            elif action == "copy":
                copies.append(_Copy(bound, job, token_id, state_hash, row["earlier_image"]))
            elif action == "stale":
                metrics.renders_total.labels(name, "stale").inc()
                log.info("stale render job skipped", collection=name, token=token_id)
            elif action == "render":
                body = orjson.loads(row["state"])
                state = TokenState(token_id, body["traits"], body["stage"])
                assert state.state_hash == state_hash, "stored state does not match its hash"
                request = render_request(bound.collection, state, int(job["seed"]))
                pending.append(_Pending(bound, job, state, request))
            # "handled": held for review, rejected or failed: nothing to render or announce
        return pending, copies

    async def _copy(self, c: _Copy, announcements: list[OutgoingMessage]) -> int | None:
        """Publish the token's return to an earlier state: a new version copying that
        state's newest earlier one (one transaction), queued for announcement. Returns the
        new version, or None when another delivery of the job copied it already."""
        name = c.bound.collection.name
        phash = None
        if c.bound.collection.guardrails.enabled:
            phash = await self._phash(c.image_sha256)
        triggered_by = orjson.dumps(c.job.get("triggered_by") or []).decode()
        async with self._pool.acquire() as conn, conn.transaction():
            row = await copy_version(conn, name, c.token_id, c.state_hash, triggered_by)
            if row is None:
                return None
            if phash is not None:
                await set_art_hash(conn, name, c.token_id, int(row["version"]), phash)
        metrics.renders_total.labels(name, "copied").inc()
        announcements.append(self._announcement(c.bound, c.token_id, row))
        log.info(
            "version copied: the token is back in an earlier state",
            collection=name,
            token=c.token_id,
            state=c.state_hash[:12],
            version=row["version"],
            image=c.image_sha256[:12],
        )
        return int(row["version"])

    async def _phash(self, image_sha256: str) -> int | None:
        """The perceptual hash of a stored image, or None (logged) when it is gone or does
        not decode. Raises StorageError when the store fails."""
        try:
            png = await asyncio.to_thread(self._store.get, image_sha256)
            facts = await asyncio.to_thread(measure_png, png)
        except (BlobNotFoundError, BlobIntegrityError, DecodeError) as exc:
            log.warning("copied version's image unreadable", image=image_sha256, error=str(exc))
            return None
        return facts.phash

    async def _render_chunk(
        self, chunk: list[_Pending], announcements: list[OutgoingMessage]
    ) -> list[int]:
        """Render one chunk, retrying renders that fail a guardrail with the next seed (one
        ``render_batch`` call per round), then record each job's outcome in one transaction."""
        bound = chunk[0].bound
        name = bound.collection.name
        rails = bound.collection.guardrails
        failed: list[list[_Checked]] = [[] for _ in chunk]
        passed: dict[int, _Checked] = {}
        todo = list(range(len(chunk)))
        for attempt in range(rails.max_attempts if rails.enabled else 1):
            requests = [
                replace(chunk[i].request, seed=attempt_seed(chunk[i].request.seed, attempt))
                for i in todo
            ]
            results = await self._render(name, requests)
            checked = await asyncio.to_thread(
                self._check_and_store, [chunk[i] for i in todo], results, attempt
            )
            await self._check_duplicates(bound, checked)
            retry = []
            for i, c in zip(todo, checked, strict=True):
                if c.failures:
                    failed[i].append(c)
                    retry.append(i)
                    for failure in c.failures:
                        metrics.guardrail_rejections_total.labels(name, failure.check).inc()
                    log.info(
                        "render failed its guardrails",
                        collection=name,
                        token=c.pending.state.token_id,
                        attempt=attempt,
                        seed=c.request.seed,
                        failed=[f.check for f in c.failures],
                    )
                else:
                    passed[i] = c
            todo = retry
            if not todo:
                break
        created: list[int] = []
        async with self._pool.acquire() as conn:
            for i, p in enumerate(chunk):
                async with conn.transaction():
                    version = await self._record(conn, p, failed[i], passed.get(i), announcements)
                if version is not None:
                    created.append(version)
        return created

    async def _render(self, name: str, requests: list[RenderRequest]) -> list[RenderResult]:
        renderer = self._renderers[name]
        started = time.perf_counter()
        try:
            results = await asyncio.to_thread(renderer.render_batch, requests)
        except Exception:
            metrics.renders_total.labels(name, "failed").inc(len(requests))
            raise
        each = (time.perf_counter() - started) / len(requests)
        for _ in requests:
            metrics.render_seconds.labels(renderer.name).observe(each)
        return results

    async def _check_duplicates(self, bound: BoundCollection, checked: list[_Checked]) -> None:
        """The near-duplicate guardrail for renders that passed the others: one query."""
        rails = bound.collection.guardrails
        if not rails.enabled or rails.duplicate_distance is None:
            return
        subjects = [c for c in checked if c.facts is not None and not c.failures]
        async with self._pool.acquire() as conn:
            near = await near_duplicates(
                conn,
                bound.collection.name,
                [(c.pending.state.token_id, c.phash) for c in subjects],
                distance=rails.duplicate_distance,
                previous="previous" in rails.duplicate_of,
                others="collection" in rails.duplicate_of,
            )
        for i, (of_token, version, bits) in near.items():
            c = subjects[i]
            c.failures.append(duplicate_failure(bits, of_token, c.pending.state.token_id, version))

    async def _record(
        self,
        conn: asyncpg.Connection,
        p: _Pending,
        failed: list[_Checked],
        passed: _Checked | None,
        announcements: list[OutgoingMessage],
    ) -> int | None:
        """Record a job's outcome (in the caller's transaction): its failed attempts, then
        the version (``auto``) or the pending candidate (``review``). Returns the new public
        version, if any."""
        name = p.bound.collection.name
        for c in failed:
            await insert_candidate(conn, self._candidate(c, "guardrail_failed"))
        if passed is None:
            metrics.renders_total.labels(name, "guardrail_failed").inc()
            log.warning(
                "every attempt failed its guardrails: the previous version stays public",
                collection=name,
                token=p.state.token_id,
                attempts=len(failed),
            )
            return None
        assert passed.image is not None
        assert passed.meta is not None
        if p.bound.collection.publish == "review":
            candidate = await insert_candidate(conn, self._candidate(passed, "pending"))
            if candidate is not None:
                metrics.renders_total.labels(name, "pending").inc()
                log.info(
                    "version held for review",
                    collection=name,
                    token=p.state.token_id,
                    candidate=candidate,
                )
            return None
        row = await insert_version(
            conn,
            NewVersion(
                name,
                p.state.token_id,
                p.state.state_hash,
                p.state.canonical().decode(),
                passed.image.sha256,
                passed.image.cid,
                passed.meta.sha256,
                passed.meta.cid,
                passed.meta_bytes.decode(),
                orjson.dumps(p.job.get("triggered_by") or []).decode(),
            ),
        )
        if row is None:  # another delivery of this job won the race: nothing new
            return None
        if passed.facts is not None:
            await set_art_hash(conn, name, p.state.token_id, int(row["version"]), passed.phash)
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
            image=passed.image.sha256[:12],
            attempts=len(failed) + 1,
        )
        return int(row["version"])

    def _candidate(self, c: _Checked, status: str) -> NewCandidate:
        p = c.pending
        return NewCandidate(
            collection=p.bound.collection.name,
            token_id=p.state.token_id,
            state_hash=p.state.state_hash,
            state=p.state.canonical().decode(),
            job_seed=p.request.seed,
            seed=c.request.seed,
            attempt=c.attempt,
            status=status,
            reasons=[f.as_json() for f in c.failures],
            image_sha256=None if c.image is None else c.image.sha256,
            image_cid=None if c.image is None else c.image.cid,
            metadata_sha256=None if c.meta is None else c.meta.sha256,
            metadata_cid=None if c.meta is None else c.meta.cid,
            metadata=None if c.meta is None else c.meta_bytes.decode(),
            phash=None if c.facts is None else c.phash,
            triggered_by=orjson.dumps(p.job.get("triggered_by") or []).decode(),
        )

    def _check_and_store(
        self, pending: list[_Pending], results: list[RenderResult], attempt: int
    ) -> list[_Checked]:
        """Run the image and metadata guardrails on each render and store what is sound: the
        image once it decodes, the metadata once it passes the schema. Blocks (decoding,
        hashing, file or S3 I/O): one worker-thread hop for the chunk."""
        return [
            self._check_and_store_one(p, result, attempt)
            for p, result in zip(pending, results, strict=True)
        ]

    def _check_and_store_one(self, p: _Pending, result: RenderResult, attempt: int) -> _Checked:
        collection = p.bound.collection
        rails = collection.guardrails
        request = replace(p.request, seed=attempt_seed(p.request.seed, attempt))
        checked = _Checked(p, request, attempt)
        if rails.enabled:
            limits = ImageLimits(collection.image_size, rails.min_entropy_bits, rails.min_stddev)
            checked.facts, failures = check_image(
                result.png,
                width=result.width,
                height=result.height,
                limits=limits,
                pixels=result.pixels,
            )
            checked.failures.extend(failures)
            if checked.facts is None:
                return checked  # not an image: nothing worth storing
        checked.image = self._store.put(result.png, "image/png")
        document = build_metadata(
            collection,
            p.state,
            result,
            image_uri=f"{self._public_url}/images/{checked.image.sha256}",
            image_cid=checked.image.cid,
            triggered_by=list(p.job.get("triggered_by") or []),
            prompt=p.request.prompt,
        )
        invalid = check_metadata(document)
        if invalid:
            checked.failures.extend(invalid)
            return checked
        checked.meta_bytes = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
        checked.meta = self._store.put(checked.meta_bytes, "application/json")
        return checked

    def _announcement(
        self, bound: BoundCollection, token_id: int, row: asyncpg.Record
    ) -> OutgoingMessage:
        """The metadata update of a public version (re-announcing one is harmless: consumers
        dedupe by (contract, token, version))."""
        return metadata_update(bound, token_id, row, public_url=self._public_url, topic=self._topic)
