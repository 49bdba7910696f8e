"""`dnft api` against real Postgres, tansu and a blob store, with versions made by the real
planner and render worker (as the regenerator makes them), for the API and gallery tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Self

import aiohttp
import yaml
from multidict import CIMultiDict
from yarl import URL

from dnft.collection import collection_from_mapping
from dnft.config import Settings, settings_from_mapping
from dnft.devservices import PostgresService
from dnft.storage import LocalBlobStore
from publisher.api.pipeline import ApiServer
from regenerator import renderer_for
from tests.support.chain import COLLECTION_ABI
from tests.support.messages import CONTRACT, event, observation
from tests.support.regenerator import PUBLIC_URL, VersionMaker, migrated_database, version_maker
from tests.support.rules import RULES

COLLECTION_RULES = RULES | {
    "token_name": "Critter #{token_id}",
    "image_size": 128,
    "description": "Test critters",
}
HOSTILE = '"><script>alert(1)</script><img src=x onerror=alert(2)>'


def api_config(
    *,
    dsn: str,
    bootstrap: str,
    root: Path,
    rules: dict[str, Any] = COLLECTION_RULES,
    api: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A dnft.yaml (as a mapping) for the test collection (``rules``, written to
    ``root/collection.yaml``), its blobs under ``root``; ``api`` adds keys to its section."""
    (root / "collection.yaml").write_text(yaml.safe_dump(rules))
    return {
        "http": {"port": 0},
        "networks": [{"name": "local", "chain_id": 31337, "rpc_urls": ["http://127.0.0.1:1"]}],
        "contracts": [
            {
                "name": "collection",
                "network": "local",
                "address": CONTRACT,
                "abi": str(COLLECTION_ABI),
            }
        ],
        "kafka": {"bootstrap_servers": [bootstrap]},
        "postgres": {"dsn": dsn},
        "collections": [{"file": str(root / "collection.yaml")}],
        "regenerator": {
            "public_url": PUBLIC_URL,
            "storage": {"kind": "local", "path": str(root / "blobs")},
        },
        "api": {"port": 0, "resync_s": 300, **(api or {})},
    }


class ApiWorld:
    """A started ApiServer over the versions ``maker`` makes: ``async with`` serves it."""

    def __init__(self, settings: Settings, maker: VersionMaker) -> None:
        self.settings, self.maker, self.pool = settings, maker, maker.pool
        self.server = ApiServer(settings)
        self.store = LocalBlobStore(settings.regenerator.storage.path)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.bound_port}"

    async def __aenter__(self) -> Self:
        await self.server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.stop()


@asynccontextmanager
async def api_world(
    postgres: PostgresService, bootstrap: str, root: Path, api: dict[str, Any] | None = None
) -> AsyncIterator[ApiWorld]:
    """A fresh database, the regenerator's planner and render worker, and a started
    ApiServer on a free port; everything torn down after."""
    async with migrated_database(postgres, "api") as dsn:
        settings = settings_from_mapping(
            api_config(dsn=dsn, bootstrap=bootstrap, root=root, api=api), {}
        )
        collection = collection_from_mapping(COLLECTION_RULES)
        suffix = uuid.uuid4().hex[:8]
        async with (
            version_maker(
                dsn,
                bootstrap,
                collection,
                renderer_for(collection),
                store=LocalBlobStore(settings.regenerator.storage.path, fsync=False),
                jobs_topic=f"api-jobs.{suffix}",
                updates_topic=f"api-updates.{suffix}",
            ) as maker,
            ApiWorld(settings, maker) as world,
        ):
            yield world


async def with_sample_versions(world: ApiWorld) -> None:
    """Token 1 with three versions (mint; a feed round; feeding and a hostile trait), token 2
    with one, token 5 known but not rendered yet."""
    assert await world.maker.step([event(1, "Transfer", 1, to="0xaa")]) == [1]
    assert await world.maker.step([observation(1, "2500")]) == [2]
    assert await world.maker.step(
        [
            event(2, "Fed", 1, amount="1"),
            event(3, "Fed", 1, amount="1"),
            event(4, "TraitSet", 1, key="mood", value=HOSTILE),
            event(5, "Transfer", 2, to="0xbb"),
        ]
    ) == [3, 1]
    await world.maker.step([event(6, "Transfer", 5, to="0xcc")], render=False)


async def get(
    http: aiohttp.ClientSession, url: str, **kwargs: Any
) -> tuple[int, CIMultiDict[str], bytes]:
    """Status, headers (case-insensitive) and body of a GET."""
    async with http.get(url, **kwargs) as response:
        return response.status, response.headers.copy(), await response.read()


async def error_of(http: aiohttp.ClientSession, url: str | URL) -> tuple[int, dict[str, Any]]:
    """Status and JSON error document of a GET that fails (it must be JSON)."""
    async with http.get(url) as response:
        assert response.content_type == "application/json", await response.text()
        error: dict[str, Any] = await response.json()
        return response.status, error


@asynccontextmanager
async def another_server(world: ApiWorld, **api: Any) -> AsyncIterator[str]:
    """A second ApiServer on ``world``'s database and blobs with ``api`` settings changed (and
    a cold blob cache); yields its base URL."""
    settings = world.settings.model_copy(update={"api": world.settings.api.model_copy(update=api)})
    server = ApiServer(settings)
    await server.start()
    try:
        yield f"http://127.0.0.1:{server.bound_port}"
    finally:
        await server.stop()
