"""Render workers: render jobs in, stored images + metadata and metadata updates out.

Workers run in their own consumer group on ``dnft.render.jobs.v1`` (keyed by token, so one
token's jobs reach one worker in order); add workers (GPU pods) to render faster. A batch of
jobs goes through the steps of :mod:`regenerator.steps`, chained here:

1. **look up** every job's token in one query and decide each job's action: re-announce the
   newest version, copy an earlier version (the token is back in a state it had), render, or
   nothing (stale, held for review, failed before);
2. **render** what is left in chunks of the renderer's batch size (``CONCURRENT_CHUNKS`` in
   flight: one renders while the one before it is checked and recorded);
3. **check** each render against the collection's guardrails and store it (image and
   metadata, content-addressed); a render that fails is rendered again with the next seed;
4. **record** each job's outcome in one transaction: failed attempts, then the token's next
   public version (``publish: auto``) or a candidate held for a curator (``publish: review``);
5. **announce** the new public versions on ``dnft.metadata.updates.v1``, once for the batch.

Only a token's current state renders or is copied, so a batch adds at most one version per
token, and a token's versions are numbered in state order. Every step is idempotent: a batch
that raises is simply handled again. The caller commits the jobs' offsets after
:meth:`RenderWorker.handle` returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import asyncpg

from dnft.collection import BoundCollection
from dnft.kafka import AsyncProducer
from dnft.messages import RenderJob
from dnft.storage import BlobStore
from regenerator.renderers.base import Renderer
from regenerator.steps.announce import Announcements
from regenerator.steps.check import render_checked
from regenerator.steps.copy import copy_earlier
from regenerator.steps.jobs import ToRender
from regenerator.steps.lookup import look_up
from regenerator.steps.record import record_chunk
from regenerator.steps.render import chunks

# Chunks in flight at once: one renders while the one before it is stored and recorded.
CONCURRENT_CHUNKS = 2


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

    async def handle(self, jobs: Sequence[RenderJob]) -> list[int]:
        """Process a batch of render jobs; returns the versions created. Raises on failure
        (nothing is committed then; every step is idempotent, so a retry is safe)."""
        announcements = Announcements(topic=self._topic, public_url=self._public_url)
        looked_up = await look_up(self._pool, self._collections, jobs)
        for known in looked_up.announce:
            announcements.add(known.bound, known.token_id, known.row)
        created: list[int] = []
        for copy in looked_up.copy:
            version = await copy_earlier(self._pool, self._store, copy, announcements)
            if version is not None:
                created.append(version)
        slots = asyncio.Semaphore(CONCURRENT_CHUNKS)

        async def render_and_record(chunk: list[ToRender]) -> None:
            async with slots:
                renderer = self._renderers[chunk[0].bound.collection.name]
                rendered = await render_checked(
                    chunk, renderer, self._store, self._pool, public_url=self._public_url
                )
                created.extend(await record_chunk(self._pool, rendered, announcements))

        chunked = chunks(looked_up.render, self._renderers)
        await asyncio.gather(*(render_and_record(chunk) for chunk in chunked))
        await announcements.send(self._producer)
        return created
