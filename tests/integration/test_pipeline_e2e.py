"""Chain -> indexer -> Kafka -> regenerator -> versions: the whole path, all servers real."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from dnft.config import settings_from_mapping
from dnft.devservices import AnvilService
from dnft.kafka import AsyncProducer, OutgoingMessage
from indexer import NetworkIndexer
from regenerator.pipeline import run_regenerator
from tests.support.chain import make_world
from tests.support.indexer import IndexerConfigFor
from tests.support.kafka import read_topic
from tests.support.messages import observation

REPO = Path(__file__).resolve().parents[2]


async def current_versions(dsn: str) -> dict[int, dict[str, Any]]:
    """token -> metadata of the version matching its current state (if rendered yet)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "select t.token_id, v.version, v.metadata from regen_tokens t join token_versions v "
            "on v.collection = t.collection and v.token_id = t.token_id "
            "and v.state_hash = t.state_hash"
        )
    finally:
        await conn.close()
    return {
        int(r["token_id"]): orjson.loads(r["metadata"]) | {"_version": r["version"]} for r in rows
    }


class TestPipeline:
    """Mints, Fed and TraitSet events and a feed change end as rendered versions."""

    async def test_chain_to_versions(
        self,
        fresh_anvil: AnvilService,
        indexer_config_for: IndexerConfigFor,
        unique_topic: Callable[[str], str],
        tmp_path: Path,
    ) -> None:
        world = await make_world(fresh_anvil.rpc_url, mint_count=5)
        await world.feed(1)
        await world.feed(1)
        await world.set_trait(2, "mood", "sleepy")
        raw = indexer_config_for(world, ws_url=fresh_anvil.ws_url)
        raw["kafka"]["topics"] |= {
            "oracle_observations": unique_topic("obs"),
            "render_jobs": unique_topic("jobs"),
            "metadata_updates": unique_topic("updates"),
            "dead_letter": unique_topic("dlq"),
        }
        suffix = uuid.uuid4().hex[:8]
        raw["collections"] = [{"file": str(REPO / "collections/sample.yaml")}]
        raw["regenerator"] = {
            "storage": {"kind": "local", "path": str(tmp_path / "blobs")},
            "planner_group": f"planner-{suffix}",
            "render_group": f"render-{suffix}",
        }
        settings = settings_from_mapping(raw, {})
        producer = AsyncProducer(settings.kafka)
        await producer.start()
        stopping = asyncio.Event()
        indexer = NetworkIndexer(settings, "local", producer)
        tasks = [
            asyncio.create_task(indexer.run(stopping)),
            asyncio.create_task(run_regenerator(settings, "all", stopping, None)),
        ]
        try:

            async def settled(check: Callable[[dict[int, dict[str, Any]]], bool]) -> None:
                async def poll() -> bool:
                    for task in tasks:
                        if task.done():
                            task.result()  # surface a crash instead of a time-out
                    return check(await current_versions(settings.postgres.dsn))

                # Generous: consumer-group joins and renders share 2 busy cores in CI.
                deadline = asyncio.get_running_loop().time() + 120
                while not await poll():
                    if asyncio.get_running_loop().time() > deadline:
                        seen = await current_versions(settings.postgres.dsn)
                        summary = {t: traits(m) for t, m in seen.items()}
                        raise AssertionError(f"pipeline did not settle; current: {summary}")
                    await asyncio.sleep(0.2)

            def traits(m: dict[str, Any]) -> dict[str, Any]:
                return {a["trait_type"]: a["value"] for a in m["attributes"]}

            await settled(
                lambda v: (
                    len(v) == 5 and traits(v[1])["fed"] == 2 and traits(v[2])["mood"] == "sleepy"
                )
            )
            v = await current_versions(settings.postgres.dsn)
            assert traits(v[1])["stage"] == "hatchling"
            assert traits(v[3])["stage"] == "egg"
            assert {traits(m)["market"] for m in v.values()} == {"unknown"}

            # A feed change re-renders every token of the collection.
            await producer.send(
                OutgoingMessage(
                    settings.kafka.topics.oracle_observations,
                    key=b"eth-usd",
                    value=orjson.dumps(observation(1, "3100.5")),
                )
            )
            await settled(
                lambda v: len(v) == 5 and all(traits(m)["market"] == "calm" for m in v.values())
            )
            # And a Fed after that evolves token 3 once more.
            await world.feed(3)
            await settled(lambda v: 3 in v and traits(v[3])["fed"] == 1)
        finally:
            stopping.set()
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
            await producer.close()
        updates = read_topic(
            settings.kafka.bootstrap_servers[0], settings.kafka.topics.metadata_updates
        )
        conn = await asyncpg.connect(settings.postgres.dsn)
        try:
            stored = {
                (str(r["token_id"]), r["version"])
                for r in await conn.fetch("select token_id, version from token_versions")
            }
        finally:
            await conn.close()
        # Every version stored was announced, and nothing else was (how many intermediate
        # versions exist depends on how the planner's batches fell).
        assert {(u["token_id"], u["version"]) for u in updates} == stored
        assert len(stored) >= 11  # 5 first renders, 5 feed re-renders, 1 more Fed
