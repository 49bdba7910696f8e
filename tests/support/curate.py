"""A curation world: real Postgres, tansu and blob store; the real planner, render worker
and `dnft api` with /curate enabled; a collection whose renderer is :class:`ScriptedRenderer`
(our own Renderer implementation, told per token what each render should come out as)."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import numpy as np
import yaml

from dnft.collection import BoundCollection, collection_from_mapping
from dnft.config import KafkaSettings, Settings, settings_from_mapping
from dnft.devservices import PostgresService
from dnft.kafka import AsyncProducer, ensure_topics
from dnft.migrations import apply_migrations
from dnft.storage import LocalBlobStore
from publisher.api.curate_auth import hash_password
from publisher.api.pipeline import ApiServer
from regenerator import Planner, RenderWorker
from regenerator.renderers import ProceduralRenderer, RenderRequest, RenderResult, encode_png
from tests.support.api import PUBLIC_URL, VersionMaker
from tests.support.chain import read_topic
from tests.support.messages import CONTRACT
from tests.support.rules import RULES

TOKEN = "curate-token-" + "x" * 24
USER, PASSWORD = "ann", "correct horse battery"
SIZE = 64


class ScriptedRenderer:
    """Procedural art, unless the token's script says otherwise for its next render:
    ``blank`` (one flat colour), ``dup`` (the token's last good image again), ``dup:N``
    (token N's last good image), ``badmeta`` (a provenance that fails the metadata schema),
    ``ok``. Implements the Renderer Protocol; records every request it got."""

    name = "scripted"
    version = "1"
    max_batch = 8

    def __init__(self, stages: list[str], buckets: list[str]) -> None:
        self._art = ProceduralRenderer(stages=stages, buckets=buckets)
        self.script: defaultdict[int, list[str]] = defaultdict(list)
        self.last_good: dict[int, bytes] = {}
        self.requests: list[RenderRequest] = []

    def render(self, request: RenderRequest) -> RenderResult:
        return self.render_batch([request])[0]

    def render_batch(self, requests: Sequence[RenderRequest]) -> list[RenderResult]:
        return [self._one(r) for r in requests]

    def _one(self, request: RenderRequest) -> RenderResult:
        self.requests.append(request)
        mode = self.script[request.token_id].pop(0) if self.script[request.token_id] else "ok"
        base = self._art.render(replace(request, params={}))
        png, provenance = base.png, {**base.provenance, "mode": mode}
        if mode == "blank":
            png = encode_png(np.full((request.size, request.size, 3), 200, dtype=np.uint8))
        elif mode.startswith("dup"):
            _, _, other = mode.partition(":")
            png = self.last_good[int(other) if other else request.token_id]
        elif mode == "badmeta":
            provenance["seed"] = -1
        else:
            self.last_good[request.token_id] = png
        return RenderResult.build(
            png,
            width=request.size,
            height=request.size,
            renderer=self.name,
            renderer_version=self.version,
            provenance=provenance,
        )


def rules(publish: str, **guardrails: Any) -> dict[str, Any]:
    return RULES | {
        "token_name": "Critter #{token_id}",
        "image_size": SIZE,
        "publish": publish,
        "guardrails": {"duplicate_distance": 2, **guardrails},
    }


class CurateWorld:
    def __init__(self, settings: Settings, maker: VersionMaker, pool: asyncpg.Pool) -> None:
        self.settings, self.maker, self.pool = settings, maker, pool
        self.server = ApiServer(settings)
        self.renderer: ScriptedRenderer
        self.updates_topic = settings.kafka.topics.metadata_updates
        self.jobs_topic = settings.kafka.topics.render_jobs

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.bound_port}"

    def updates(self) -> list[dict[str, Any]]:
        """Every metadata update announced so far."""
        return read_topic(self.settings.kafka.bootstrap_servers[0], self.updates_topic, 30, 0.5)

    async def candidates(self, token_id: int) -> list[asyncpg.Record]:
        return await self.pool.fetch(
            "select * from curation_candidates where token_id = $1 order by id", token_id
        )


@asynccontextmanager
async def curate_world(
    postgres: PostgresService, bootstrap: str, root: Path, publish: str, **guardrails: Any
) -> AsyncIterator[CurateWorld]:
    """A fresh database, topics of this world's own, the planner and the render worker (with
    a ScriptedRenderer), and `dnft api` with /curate (bearer token and user ann)."""
    name = f"cur_{uuid.uuid4().hex[:12]}"
    dsn = postgres.create_database(name)
    await apply_migrations(dsn)
    suffix = uuid.uuid4().hex[:8]
    jobs, updates = f"cur-jobs.{suffix}", f"cur-updates.{suffix}"
    collection_rules = rules(publish, **guardrails)
    (root / "collection.yaml").write_text(yaml.safe_dump(collection_rules))
    config = {
        "http": {"port": 0},
        "networks": [{"name": "local", "chain_id": 31337, "rpc_urls": ["http://127.0.0.1:1"]}],
        "contracts": [
            {"name": "collection", "network": "local", "address": CONTRACT, "abi": "abi.json"}
        ],
        "kafka": {
            "bootstrap_servers": [bootstrap],
            "topics": {"render_jobs": jobs, "metadata_updates": updates},
        },
        "postgres": {"dsn": dsn},
        "collections": [{"file": str(root / "collection.yaml")}],
        "regenerator": {
            "public_url": PUBLIC_URL,
            "storage": {"kind": "local", "path": str(root / "blobs")},
        },
        "api": {
            "port": 0,
            "resync_s": 300,
            "rate_limit": {"requests_per_s": 1000, "burst": 1000},
            "curate": {
                "enabled": True,
                "token_file": str(root / "curate-token"),
                "token_curator": "ci-bot",
                "users": [
                    {"name": USER, "password_hash": hash_password(PASSWORD, iterations=2_000)}
                ],
            },
        },
    }
    (root / "curate-token").write_text(TOKEN + "\n")
    settings = settings_from_mapping(config, {})
    kafka = KafkaSettings(bootstrap_servers=[bootstrap])
    await ensure_topics(kafka, {jobs: 2, updates: 2})
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    producer = AsyncProducer(kafka)
    await producer.start()
    collection = collection_from_mapping(collection_rules)
    bound = BoundCollection(collection, 31337, CONTRACT)
    store = LocalBlobStore(settings.regenerator.storage.path, fsync=False)
    renderer = ScriptedRenderer(["egg", "kid"], ["unknown", "bear", "bull"])
    planner = Planner(pool, producer, [bound], jobs_topic=jobs)
    worker = RenderWorker(
        pool,
        producer,
        store,
        [bound],
        {collection.name: renderer},
        updates_topic=updates,
        public_url=PUBLIC_URL,
    )
    world = CurateWorld(settings, VersionMaker(planner, worker, bootstrap, jobs), pool)
    world.renderer = renderer
    await world.server.start()
    try:
        yield world
    finally:
        await world.server.stop()
        await producer.close()
        await pool.close()
        postgres.drop_database(name)


async def request(
    http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, dict[str, str], bytes]:
    async with http.request(method, url, allow_redirects=False, **kwargs) as response:
        return response.status, dict(response.headers), await response.read()


async def settle() -> None:
    """Let the API's outbox send (it flushes right after a decision; this is a margin)."""
    await asyncio.sleep(0.1)
