"""Finality against a real anvil with tags (``--slots-in-an-epoch``), tansu and Postgres: the
indexer's final block follows the node's ``safe`` / ``finalized`` tag, each published event
says how final its block was, and ``announce_after: safe`` holds on-chain announcements (the
whole path: indexer, regenerator, pusher) until the events behind a version are safe."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from dnft import metrics
from dnft.config import settings_from_mapping
from dnft.devservices import AnvilService
from dnft.kafka import AsyncProducer
from indexer import NetworkIndexer
from publisher.pusher.status import pusher_pending
from regenerator.pipeline import run_regenerator
from tests.support.chain import World, chain_stream, make_world
from tests.support.indexer import IndexerConfigFor, RunningIndexer, caught_up
from tests.support.pushed import announcements, coverage, query
from tests.support.pusher import PusherConfigFor, Updater, funded_updater, running_pusher
from tests.support.wait import wait_for

# anvil: ``safe`` is EPOCH blocks behind the head, ``finalized`` 2 * EPOCH (FACTS.md, Chain).
EPOCH = 4


@pytest.fixture
def tagged_anvil(tmp_path: Path) -> Iterator[AnvilService]:
    """A chain of this test's own whose node serves ``safe`` and ``finalized`` tags."""
    service = AnvilService(tmp_path, slots_in_an_epoch=EPOCH)
    service.start()
    try:
        yield service
    finally:
        service.stop()


class TestConfirmationsTag:
    """``confirmations: {tag: ...}``: the final block is the node's tag, not a depth."""

    @pytest.mark.parametrize(("tag", "behind"), [("safe", EPOCH), ("finalized", 2 * EPOCH)])
    async def test_final_block_follows_the_tag(
        self,
        tagged_anvil: AnvilService,
        indexer_config_for: IndexerConfigFor,
        db: str,
        tag: str,
        behind: int,
    ) -> None:
        world = await make_world(tagged_anvil.rpc_url, mint_count=3)
        for i in range(12):
            await world.feed(1 + i % 3, amount=i + 1)
        start_head = await world.block_number()
        # No depth: the final block can only come from the node's tag.
        settings = settings_from_mapping(indexer_config_for(world, confirmations={"tag": tag}), {})
        async with RunningIndexer(settings) as indexer:
            await caught_up(indexer, world)
            for i in range(2 * behind + 2):  # each block is mined after the last was indexed
                await world.feed(1 + i % 3, amount=1)
                head = await caught_up(indexer, world)
            conn = await asyncpg.connect(db)
            try:
                kept = await conn.fetchval(
                    "select min(number) from indexer_blocks where network = 'local'"
                )
            finally:
                await conn.close()
        assert kept == head - behind, f"the window starts at the node's {tag} block"
        events = [m for m in chain_stream(settings) if not m["removed"]]
        assert events
        for m in events:
            # The backfill stopped at the tag's block; realtime found each later block new.
            expected = tag if m["block_number"] <= start_head - behind else "head"
            assert m["finality"] == expected, m
        assert {m["finality"] for m in events} == {tag, "head"}


async def pushed_inputs(world: World, sender: str) -> list[str]:
    """The calldata (hex, no 0x) of every transaction ``sender`` sent to the collection on the
    canonical chain, read block by block from the node."""
    head = await world.block_number()
    out = []
    for number in range(head + 1):
        block = (await world.rpc("eth_getBlockByNumber", [hex(number), True]))["result"]
        for tx in block["transactions"]:
            if tx["from"].lower() == sender.lower() and (tx["to"] or "").lower() == (
                world.address.lower()
            ):
                out.append(tx["input"].removeprefix("0x"))
    return out


@dataclass
class Pipeline:
    """Indexer, regenerator (planner and render worker) and pusher of one collection, in
    this process, on a tagged anvil."""

    world: World
    updater: Updater
    dsn: str
    tasks: list[asyncio.Task[None]]

    async def versions(self, token: int) -> dict[int, str]:
        """version -> metadata CID of the token's versions."""
        rows = await query(
            self.dsn,
            "select version, metadata_cid from token_versions where token_id = $1",
            token,
        )
        return {int(r["version"]): str(r["metadata_cid"]) for r in rows}

    async def update(self, token: int, version: int) -> asyncpg.Record | None:
        rows = await query(
            self.dsn,
            "select u.push_id, u.confirmed_at, u.dropped_at, u.dropped_reason "
            "from pusher_updates u where token_id = $1 and version = $2",
            token,
            version,
        )
        return rows[0] if rows else None

    async def until(self, what: str, check: Callable[[], Awaitable[Any]]) -> Any:
        async def alive() -> Any:
            for task in self.tasks:
                if task.done():
                    task.result()  # surface a crash instead of a time-out
            return await check()

        # Generous: consumer-group joins and renders share 2 busy cores.
        return await wait_for(what, alive, 120, every_s=0.2)

    async def mine(self, blocks: int) -> None:
        await self.world.rpc("anvil_mine", [hex(blocks)])


@pytest.fixture
async def pipeline(
    tagged_anvil: AnvilService,
    indexer_config_for: IndexerConfigFor,
    pusher_config_for: PusherConfigFor,
    unique_topic: Callable[[str], str],
    tmp_path: Path,
) -> AsyncIterator[Pipeline]:
    """Two minted tokens, their mints already safe; the collection announced with
    ``setTokenURIs`` (each version's CID on chain) once its events are ``safe``."""
    world = await make_world(tagged_anvil.rpc_url, mint_count=2)
    updater = await funded_updater(world)
    raw = indexer_config_for(world, confirmations={"tag": "safe"})
    pushed = pusher_config_for(
        world,
        updater,
        mode="token-uri",
        collections=[{"contract": "collection", "mode": "token-uri", "announce_after": "safe"}],
        confirmations=1,
    )
    raw["kafka"]["topics"] |= pushed["kafka"]["topics"] | {
        "oracle_observations": unique_topic("obs"),
        "render_jobs": unique_topic("jobs"),
    }
    suffix = uuid.uuid4().hex[:8]
    raw["collections"] = pushed["collections"]
    raw["pusher"] = pushed["pusher"]
    raw["regenerator"] = {
        "storage": {"kind": "local", "path": str(tmp_path / "blobs")},
        "planner_group": f"planner-{suffix}",
        "render_group": f"render-{suffix}",
    }
    settings = settings_from_mapping(raw, {})
    await world.rpc("anvil_mine", [hex(3 * EPOCH)])  # the mints are safe
    producer = AsyncProducer(settings.kafka)
    await producer.start()
    stopping = asyncio.Event()
    tasks = [
        asyncio.create_task(NetworkIndexer(settings, "local", producer).run(stopping)),
        asyncio.create_task(run_regenerator(settings, "all", stopping, None)),
    ]
    try:
        async with running_pusher(settings) as runtime:
            running = Pipeline(world, updater, settings.postgres.dsn, tasks)
            for token in (1, 2):  # the mints' versions, announced at once (already safe)

                async def confirmed(token: int = token) -> bool:
                    row = await running.update(token, 1)
                    return row is not None and row["confirmed_at"] is not None

                await running.until(f"token {token} v1 announced", confirmed)
            yield running
            assert runtime.state == "running"
    finally:
        stopping.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
        await producer.close()


def cid_hex(cid: str) -> str:
    """How a CID's URI shows in setTokenURIs calldata."""
    return f"ipfs://{cid}".encode().hex()


class TestAnnounceAfterSafe:
    """``announce_after: safe``: the gallery has the version at once; the chain hears of it
    only once its events are safe, and never if a reorg replaced them first."""

    async def test_reorged_before_safe_is_never_announced(self, pipeline: Pipeline) -> None:
        p = pipeline
        before = coverage(await announcements(p.world))[1]
        await p.world.feed(1)  # the head block; safe is EPOCH blocks behind

        async def held() -> bool:
            row = await p.update(1, 2)
            return row is not None

        await p.until("token 1 v2 recorded by the pusher", held)
        await asyncio.sleep(1.0)  # several planning passes (every 0.1 s) while it is held
        row = await p.update(1, 2)
        assert row is not None
        assert row["push_id"] is None, "held: its event is above the safe block"
        assert metrics.pusher_updates_held.labels("local", "collection")._value.get() >= 1
        v2 = (await p.versions(1))[2]

        await p.world.rpc("anvil_reorg", [1, []])  # the feed's block is replaced, unfed

        async def restored() -> bool:
            return 3 in await p.versions(1)  # the state without the Fed: a new version

        await p.until("token 1 re-rendered without the retracted event", restored)
        await p.mine(2 * EPOCH)  # the replaced block's height is safe now

        async def dropped() -> asyncpg.Record | None:
            row = await p.update(1, 2)
            return row if row is not None and row["dropped_at"] is not None else None

        row = await p.until("token 1 v2 dropped", dropped)
        assert row["dropped_reason"] in ("superseded", "retracted")
        assert row["push_id"] is None

        async def v3_confirmed() -> bool:
            row = await p.update(1, 3)
            return row is not None and row["confirmed_at"] is not None

        await p.until("token 1 v3 announced", v3_confirmed)
        inputs = await pushed_inputs(p.world, p.updater.address)
        assert not any(cid_hex(v2) in data for data in inputs), "v2's URI never went on chain"
        assert coverage(await announcements(p.world))[1] == before + 1, "only v3 was announced"
        conn = await asyncpg.connect(p.dsn)
        try:
            pending = await pusher_pending(conn)
        finally:
            await conn.close()
        assert pending.pending_updates == 0, "a dropped update is not waiting any more"

    async def test_safe_event_is_announced_exactly_once(self, pipeline: Pipeline) -> None:
        p = pipeline
        await p.world.feed(2)

        async def recorded() -> bool:
            return await p.update(2, 2) is not None

        await p.until("token 2 v2 recorded by the pusher", recorded)
        await asyncio.sleep(1.0)
        row = await p.update(2, 2)
        assert row is not None
        assert row["push_id"] is None, "held until its event is safe"
        v2 = (await p.versions(2))[2]
        await p.mine(EPOCH)  # the Fed's block is the safe block now

        async def confirmed() -> bool:
            row = await p.update(2, 2)
            return row is not None and row["confirmed_at"] is not None

        await p.until("token 2 v2 announced", confirmed)
        await p.mine(2 * EPOCH)
        await asyncio.sleep(1.0)  # further passes announce nothing more
        inputs = await pushed_inputs(p.world, p.updater.address)
        assert sum(cid_hex(v2) in data for data in inputs) == 1, "one transaction carries v2"
        assert coverage(await announcements(p.world))[2] == 2, "v1 once, then v2 once"
        assert await metrics_held() == 0


async def metrics_held() -> float:
    value: float = metrics.pusher_updates_held.labels("local", "collection")._value.get()
    return value
