"""A curation world: real Postgres, tansu and blob store; the real planner, render worker
and `dnft api` with /curate enabled; a collection whose renderer is :class:`ScriptedRenderer`
(our own Renderer implementation, told per token what each render should come out as)."""

from __future__ import annotations

import asyncio
import base64
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
import orjson

from dnft.collection import collection_from_mapping
from dnft.config import KafkaSettings, Settings, settings_from_mapping
from dnft.devservices import PostgresService
from dnft.kafka import ensure_topics
from dnft.storage import LocalBlobStore
from publisher.api.curate_auth import hash_password
from regenerator.renderers import ProceduralRenderer, RenderRequest, RenderResult, encode_png
from tests.support.api import ApiWorld, api_config
from tests.support.regenerator import VersionMaker, migrated_database, version_maker
from tests.support.rules import RULES

TOKEN = "curate-token-" + "x" * 24
USER, PASSWORD = "ann", "correct horse battery"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
BASIC = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
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


class CurateWorld(ApiWorld):
    """An :class:`ApiWorld` with /curate, rendering with a :class:`ScriptedRenderer`."""

    def __init__(self, settings: Settings, maker: VersionMaker, renderer: ScriptedRenderer):
        super().__init__(settings, maker)
        self.renderer = renderer
        self.jobs_topic = maker.jobs_topic

    def updates(self) -> list[dict[str, Any]]:
        """Every metadata update announced so far."""
        return self.maker.updates()

    async def candidates(self, token_id: int) -> list[asyncpg.Record]:
        return list(
            await self.pool.fetch(
                "select * from curation_candidates where token_id = $1 order by id", token_id
            )
        )

    async def approve(self, candidate_id: int) -> dict[str, Any]:
        """Approve one candidate as a script does (bearer token); returns its decision."""
        async with aiohttp.ClientSession() as http:
            status, _, body = await request(
                http,
                "POST",
                f"{self.base}/curate/decide",
                data={"action": "approve", "id": str(candidate_id)},
                headers=BEARER,
            )
        assert status == 200
        decision: dict[str, Any] = orjson.loads(body)["decisions"][0]
        return decision


def curate_config(dsn: str, bootstrap: str, root: Path, rules: dict[str, Any]) -> dict[str, Any]:
    """:func:`api_config` with /curate on (bearer token and user ann), no rate limit and no
    failed-login throttle to speak of (tests try many wrong passwords from one address)."""
    (root / "curate-token").write_text(TOKEN + "\n")
    curate = {
        "enabled": True,
        "token_file": str(root / "curate-token"),
        "token_curator": "ci-bot",
        "users": [{"name": USER, "password_hash": hash_password(PASSWORD, iterations=2_000)}],
        "failed_logins_burst": 10_000,
    }
    limits = {"requests_per_s": 1000, "burst": 1000}
    return api_config(
        dsn=dsn,
        bootstrap=bootstrap,
        root=root,
        rules=rules,
        api={"rate_limit": limits, "curate": curate},
    )


@asynccontextmanager
async def curate_world(
    postgres: PostgresService, bootstrap: str, root: Path, publish: str, **guardrails: Any
) -> AsyncIterator[CurateWorld]:
    """A fresh database, topics of this world's own, the planner and the render worker (with
    a ScriptedRenderer), and `dnft api` with /curate (bearer token and user ann)."""
    async with migrated_database(postgres, "cur") as dsn:
        suffix = uuid.uuid4().hex[:8]
        jobs, updates = f"cur-jobs.{suffix}", f"cur-updates.{suffix}"
        collection_rules = rules(publish, **guardrails)
        config = curate_config(dsn, bootstrap, root, collection_rules)
        config["kafka"]["topics"] = {"render_jobs": jobs, "metadata_updates": updates}
        settings = settings_from_mapping(config, {})
        await ensure_topics(KafkaSettings(bootstrap_servers=[bootstrap]), {jobs: 2, updates: 2})
        renderer = ScriptedRenderer(["egg", "kid"], ["unknown", "bear", "bull"])
        async with (
            version_maker(
                dsn,
                bootstrap,
                collection_from_mapping(collection_rules),
                renderer,
                store=LocalBlobStore(settings.regenerator.storage.path, fsync=False),
                jobs_topic=jobs,
                updates_topic=updates,
                pool_size=4,
            ) as maker,
            CurateWorld(settings, maker, renderer) as world,
        ):
            yield world


async def request(
    http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, dict[str, str], bytes]:
    async with http.request(method, url, allow_redirects=False, **kwargs) as response:
        return response.status, dict(response.headers), await response.read()


async def settle() -> None:
    """Let the API's outbox send (it flushes right after a decision; this is a margin)."""
    await asyncio.sleep(0.1)
