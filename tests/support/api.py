"""`dnft api` against real Postgres, tansu and a blob store, with versions made by the real
planner and render worker (as the regenerator makes them), for the API and gallery tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import yaml
from multidict import CIMultiDict

from dnft.collection import BoundCollection, collection_from_mapping
from dnft.config import KafkaSettings, Settings, settings_from_mapping
from dnft.devservices import PostgresService
from dnft.kafka import AsyncProducer
from dnft.migrations import apply_migrations
from dnft.storage import LocalBlobStore
from publisher.api.pipeline import ApiServer
from regenerator import Planner, RenderWorker, renderer_for
from tests.support.chain import read_topic
from tests.support.messages import CONTRACT, chain_inputs, render_jobs
from tests.support.rules import RULES

PUBLIC_URL = "http://127.0.0.1:8000"
COLLECTION_RULES = RULES | {
    "token_name": "Critter #{token_id}",
    "image_size": 128,
    "description": "Test critters",
}


def api_config(
    *, dsn: str, bootstrap: str, root: Path, api: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A dnft.yaml (as a mapping) for the test collection, its blobs under ``root``."""
    rules = root / "collection.yaml"
    rules.write_text(yaml.safe_dump(COLLECTION_RULES))
    return {
        "http": {"port": 0},
        "networks": [{"name": "local", "chain_id": 31337, "rpc_urls": ["http://127.0.0.1:1"]}],
        "contracts": [
            {"name": "collection", "network": "local", "address": CONTRACT, "abi": "abi.json"}
        ],
        "kafka": {"bootstrap_servers": [bootstrap]},
        "postgres": {"dsn": dsn},
        "collections": [{"file": str(rules)}],
        "regenerator": {
            "public_url": PUBLIC_URL,
            "storage": {"kind": "local", "path": str(root / "blobs")},
        },
        "api": {"port": 0, "resync_s": 300, **(api or {})},
    }


class VersionMaker:
    """Plans with the real Planner and renders with the real RenderWorker (jobs go through
    Kafka, as in the regenerator)."""

    def __init__(self, planner: Planner, worker: RenderWorker, bootstrap: str, jobs: str) -> None:
        self.planner, self.worker = planner, worker
        self.bootstrap, self.jobs_topic = bootstrap, jobs
        self.jobs_seen: set[str] = set()

    async def step(self, messages: list[dict[str, Any]], *, render: bool = True) -> list[int]:
        """Apply ``messages`` (built as produced to Kafka; typed here, as the planner's
        consumer decodes them); render the jobs planned since the last step (or drop them)."""
        await self.planner.apply(chain_inputs(messages))
        jobs = await asyncio.to_thread(read_topic, self.bootstrap, self.jobs_topic, 30.0, 0.5)
        # Jobs are keyed by token over several partitions: new ones are not simply the tail.
        # By job id: a state the token comes back to is planned again, as a new job.
        new = [j for j in jobs if j["job_id"] not in self.jobs_seen]
        self.jobs_seen.update(j["job_id"] for j in new)
        return await self.worker.handle(render_jobs(new)) if render else []


class ApiWorld:
    def __init__(self, settings: Settings, maker: VersionMaker, pool: asyncpg.Pool) -> None:
        self.settings, self.maker, self.pool = settings, maker, pool
        self.server = ApiServer(settings)
        self.store = LocalBlobStore(settings.regenerator.storage.path)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.bound_port}"


@asynccontextmanager
async def api_world(
    postgres: PostgresService, bootstrap: str, root: Path, api: dict[str, Any] | None = None
) -> AsyncIterator[ApiWorld]:
    """A fresh database, the regenerator's planner and render worker, and a started
    ApiServer on a free port; everything torn down after."""
    name = f"api_{uuid.uuid4().hex[:12]}"
    dsn = postgres.create_database(name)
    await apply_migrations(dsn)
    settings = settings_from_mapping(
        api_config(dsn=dsn, bootstrap=bootstrap, root=root, api=api), {}
    )
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=3)
    producer = AsyncProducer(KafkaSettings(bootstrap_servers=[bootstrap]))
    await producer.start()
    collection = collection_from_mapping(COLLECTION_RULES)
    bound = BoundCollection(collection, 31337, CONTRACT)
    suffix = uuid.uuid4().hex[:8]
    jobs, updates = f"api-jobs.{suffix}", f"api-updates.{suffix}"
    store = LocalBlobStore(settings.regenerator.storage.path, fsync=False)
    planner = Planner(pool, producer, [bound], jobs_topic=jobs)
    worker = RenderWorker(
        pool,
        producer,
        store,
        [bound],
        {collection.name: renderer_for(collection)},
        updates_topic=updates,
        public_url=PUBLIC_URL,
    )
    world = ApiWorld(settings, VersionMaker(planner, worker, bootstrap, jobs), pool)
    await world.server.start()
    try:
        yield world
    finally:
        await world.server.stop()
        await producer.close()
        await pool.close()
        postgres.drop_database(name)


async def get(
    http: aiohttp.ClientSession, url: str, **kwargs: Any
) -> tuple[int, CIMultiDict[str], bytes]:
    """Status, headers (case-insensitive) and body of a GET."""
    async with http.get(url, **kwargs) as response:
        return response.status, response.headers.copy(), await response.read()
