"""The regenerator's own planner and render worker over a real database and broker, stepped
by the test: messages in, versions out (render jobs go through Kafka, as in the daemon)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

import asyncpg

from dnft.collection import BoundCollection, Collection, load_bound_collections
from dnft.config import KafkaSettings, Settings
from dnft.devservices import PostgresService
from dnft.kafka import AsyncProducer
from dnft.messages import RenderJob
from dnft.migrations import apply_migrations
from dnft.storage import LocalBlobStore
from regenerator import Planner, RenderWorker
from regenerator.renderers import Renderer
from tests.support.kafka import read_topic
from tests.support.messages import CONTRACT, chain_inputs, render_jobs

PUBLIC_URL = "http://127.0.0.1:8000"


class VersionMaker:
    """Plans with the real Planner and renders with the real RenderWorker."""

    def __init__(
        self,
        planner: Planner,
        worker: RenderWorker,
        pool: asyncpg.Pool,
        store: LocalBlobStore,
        bootstrap: str,
        jobs_topic: str,
        updates_topic: str,
        quiet_s: float,
    ) -> None:
        self.planner, self.worker, self.pool, self.store = planner, worker, pool, store
        self.bootstrap, self.jobs_topic, self.updates_topic = bootstrap, jobs_topic, updates_topic
        self.quiet_s = quiet_s
        self.jobs_seen: set[str] = set()

    async def step(self, messages: list[dict[str, Any]], *, render: bool = True) -> list[int]:
        """Apply ``messages`` (built as produced to Kafka; typed here, as the planner's
        consumer decodes them); render the jobs planned since the last step (or drop them).
        Returns the versions made."""
        await self.planner.apply(chain_inputs(messages))
        jobs = await asyncio.to_thread(
            read_topic, self.bootstrap, self.jobs_topic, 30.0, self.quiet_s
        )
        # Jobs are keyed by token over several partitions: new ones are not simply the tail.
        # By job id: a state the token comes back to is planned again, as a new job.
        new = [j for j in jobs if j["job_id"] not in self.jobs_seen]
        self.jobs_seen.update(j["job_id"] for j in new)
        return await self.worker.handle(render_jobs(new)) if render else []

    def sent_jobs(self) -> list[RenderJob]:
        """Every render job on the jobs topic so far, typed (as the render worker gets them)."""
        return render_jobs(read_topic(self.bootstrap, self.jobs_topic, 30.0, self.quiet_s))

    def updates(self) -> list[dict[str, Any]]:
        """Every metadata update announced so far."""
        return read_topic(self.bootstrap, self.updates_topic, 30.0, self.quiet_s)

    async def versions(self, token: int) -> list[asyncpg.Record]:
        """The token's stored versions in collection ``sample``, oldest first."""
        async with self.pool.acquire() as conn:
            return list(
                await conn.fetch(
                    "select version, state_hash, metadata, image_sha256 from token_versions "
                    "where collection = 'sample' and token_id = $1 order by version",
                    token,
                )
            )


@asynccontextmanager
async def version_maker(
    dsn: str,
    bootstrap: str,
    collection: Collection,
    renderer: Renderer,
    *,
    store: LocalBlobStore,
    jobs_topic: str,
    updates_topic: str,
    pool_size: int = 3,
    quiet_s: float = 0.5,
) -> AsyncIterator[VersionMaker]:
    """A planner and a render worker for ``collection`` (bound to CONTRACT on chain 31337)
    on a pool of ``dsn`` and a producer of their own; both closed on exit."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=pool_size)
    producer = AsyncProducer(KafkaSettings(bootstrap_servers=[bootstrap]))
    await producer.start()
    try:
        bound = BoundCollection(collection, 31337, CONTRACT)
        planner = Planner(pool, producer, [bound], jobs_topic=jobs_topic)
        worker = RenderWorker(
            pool,
            producer,
            store,
            [bound],
            {collection.name: renderer},
            updates_topic=updates_topic,
            public_url=PUBLIC_URL,
        )
        yield VersionMaker(
            planner, worker, pool, store, bootstrap, jobs_topic, updates_topic, quiet_s
        )
    finally:
        await producer.close()
        await pool.close()


class VersionMakerFor(Protocol):
    """The ``version_maker_for`` fixture: :func:`version_maker` for collection rules, with
    procedural art, on the test's database, broker, blob folder and topics."""

    def __call__(
        self, rules: dict[str, Any], *, pool_size: int = 3, quiet_s: float = 0.5
    ) -> AbstractAsyncContextManager[VersionMaker]: ...


@asynccontextmanager
async def configured_planner(
    settings: Settings, jobs_topic: str
) -> AsyncIterator[tuple[Planner, asyncpg.Pool, AsyncProducer]]:
    """The planner of the collections ``settings`` binds, sending jobs to ``jobs_topic``, as
    (planner, its pool, its producer); the pool and the producer are closed on exit."""
    producer = AsyncProducer(settings.kafka)
    await producer.start()
    pool = await asyncpg.create_pool(settings.postgres.dsn, min_size=1, max_size=2)
    try:
        planner = Planner(pool, producer, load_bound_collections(settings), jobs_topic=jobs_topic)
        yield planner, pool, producer
    finally:
        await pool.close()
        await producer.close()


@asynccontextmanager
async def migrated_database(postgres: PostgresService, prefix: str) -> AsyncIterator[str]:
    """DSN of a new database in ``postgres`` with dnft's migrations applied; dropped on exit
    (for worlds that outlive one test, where the ``db`` fixture cannot serve)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    dsn = postgres.create_database(name)
    try:
        await apply_migrations(dsn)
        yield dsn
    finally:
        postgres.drop_database(name)
