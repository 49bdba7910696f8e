"""Finality against a real anvil with tags (``--slots-in-an-epoch``), tansu and Postgres: the
indexer's final block follows the node's ``safe`` / ``finalized`` tag, each published event
says how final its block was, and ``announce_after: safe`` holds on-chain announcements (the
whole path: indexer, regenerator, pusher) until the events behind a version are safe."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from dnft import metrics
from dnft.config import settings_from_mapping
from dnft.devservices import AnvilService
from dnft.kafka import AsyncProducer
from indexer import NetworkIndexer
from publisher.pusher.outbox import Outbox
from publisher.pusher.rows import Planned, PlannedPush, UpdateRecord, WaitingUpdate
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

    async def test_remined_event_is_announced(self, pipeline: Pipeline) -> None:
        """A reorg re-mines the Fed's transaction in the replacing block: the event comes back
        under a new id, the token's state is v2's again. v2 (or, if the planner saw the
        retraction alone first, a copy of it with the same metadata) is announced once the
        new block is safe; before the fix v2 was dropped as retracted and nothing was."""
        p = pipeline
        await p.world.feed(1)

        async def recorded() -> bool:
            return await p.update(1, 2) is not None

        await p.until("token 1 v2 recorded by the pusher", recorded)
        v2 = (await p.versions(1))[2]
        (trigger,) = await query(
            p.dsn, "select event_id from regen_events where event = 'Fed' and token_id = 1"
        )
        again = {
            "from": p.world.signer.address,
            "to": p.world.address,
            "value": hex(1),
            "data": p.world.collection.encode_abi("feed", [1]),
        }
        await p.world.rpc("anvil_reorg", [1, [[again, 0]]])
        p.world.signer._nonce = None  # the reorg changed the account's nonce

        async def remined() -> bool:
            rows = await query(
                p.dsn, "select event_id from regen_events where event = 'Fed' and token_id = 1"
            )
            return [r["event_id"] for r in rows] not in ([], [trigger["event_id"]])

        await p.until("the Fed stored again under its new block hash", remined)
        await p.mine(2 * EPOCH)  # the replacing block is safe

        async def announced() -> bool:
            rows = await query(
                p.dsn,
                "select 1 from pusher_updates where token_id = 1 and metadata_cid = $1 "
                "and confirmed_at is not null",
                v2,
            )
            return bool(rows)

        await p.until("token 1's current state announced", announced)
        inputs = await pushed_inputs(p.world, p.updater.address)
        assert sum(cid_hex(v2) in data for data in inputs) == 1, "one transaction carries it"


async def metrics_held() -> float:
    value: float = metrics.pusher_updates_held.labels("local", "collection")._value.get()
    return value


# --- The hold's SQL against Postgres alone (issue 18 review): rows written as the regenerator
# and the pusher's intake write them, then one planning pass under a hold.

HOLD_CHAIN = 31337
HOLD_CONTRACT = "0x" + "ab" * 20
OTHER_CHAIN = 84532


def event_id(block_hash: str, log_index: int, part: int | None = None) -> str:
    tail = "" if part is None else f":{part}"
    return f"{HOLD_CHAIN}:0x{block_hash}:{log_index}{tail}"


@dataclass
class HoldDb:
    """A migrated database with the regenerator's and the intake's rows of one contract."""

    conn: asyncpg.Connection
    outbox: Outbox

    async def version(
        self, token: int, version: int, state: str, triggers: list[str], collection: str = "c"
    ) -> None:
        await self.conn.execute(
            "insert into token_versions (collection, token_id, version, state_hash, state, "
            "image_sha256, image_cid, metadata_sha256, metadata_cid, metadata, triggered_by) "
            "values ($1, $2, $3, $4, '{}', 'i', 'ic', 'm', $5, '{}', $6)",
            collection,
            token,
            version,
            state,
            f"cid-{token}-{version}",
            orjson.dumps(triggers).decode(),
        )

    async def state(self, token: int, state: str, collection: str = "c") -> None:
        await self.conn.execute(
            "insert into regen_tokens (collection, token_id, state, state_hash) "
            "values ($1, $2, '{}', $3) on conflict (collection, token_id) do update "
            "set state_hash = excluded.state_hash",
            collection,
            token,
            state,
        )

    async def event(self, token: int, eid: str, block: int, collection: str = "c") -> None:
        await self.conn.execute(
            "insert into regen_events (collection, token_id, event_id, event, args, "
            "block_number, log_index) values ($1, $2, $3, 'Fed', '{}', $4, 0)",
            collection,
            token,
            eid,
            block,
        )

    async def retract(self, eid: str) -> None:
        await self.conn.execute("delete from regen_events where event_id = $1", eid)

    async def waiting(self, token: int, version: int) -> None:
        recorded = await self.outbox.record_updates([update(token, version)], BINDINGS)
        assert (recorded.new, recorded.refused) == (1, []), recorded

    async def plan(self, final_block: int) -> tuple[list[tuple[int, int]], Planned]:
        released: list[tuple[int, int]] = []

        def planner(waiting: Sequence[WaitingUpdate]) -> list[PlannedPush]:
            released.extend((u.token_id, u.version) for u in waiting)
            return []

        planned = await self.outbox.plan(
            HOLD_CHAIN,
            HOLD_CONTRACT,
            "erc4906",
            window_s=0,
            max_pushes=10,
            planner=planner,
            final_block=final_block,
        )
        return released, planned


BINDINGS = {(HOLD_CHAIN, HOLD_CONTRACT): ("c",)}


def update(token: int, version: int) -> UpdateRecord:
    return UpdateRecord(
        HOLD_CHAIN,
        HOLD_CONTRACT,
        token,
        version,
        f"ipfs://cid-{token}-{version}",
        f"cid-{token}-{version}",
        datetime.now(UTC),
    )


@pytest.fixture
async def hold_db(db: str) -> AsyncIterator[HoldDb]:
    pool = await asyncpg.create_pool(db, min_size=1, max_size=2)
    conn = await asyncpg.connect(db)
    try:
        yield HoldDb(conn, Outbox(pool, sender="0x" + "01" * 20, bindings=BINDINGS))
    finally:
        await conn.close()
        await pool.close()


class TestHoldRules:
    """What ``plan`` releases, holds and drops under ``announce_after``."""

    async def test_remined_event_keeps_the_version_held_then_announced(
        self, hold_db: HoldDb
    ) -> None:
        """A reorg re-mines the version's transaction: its event comes back under a new id
        (new block hash) and the token's state is the version's again. Nothing new is
        rendered, so the held update is the only way the state reaches the chain: it stays
        held until the new event's block is final."""
        h = hold_db
        e1, e2 = event_id("aa", 0), event_id("bb", 0)
        await h.event(1, e1, 5)
        await h.event(1, e2, 10)
        await h.version(1, 1, "s1", [e1])
        await h.version(1, 2, "s2", [e2])
        await h.state(1, "s2")
        await h.waiting(1, 2)
        assert await h.plan(9) == ([], Planned(0, 1, []))  # e2's block is not final

        await h.retract(e2)  # retracted and stored again in one planner batch: state s2
        await h.event(1, event_id("cc", 0), 12)
        assert await h.plan(11) == ([], Planned(0, 1, [])), "held for the re-mined block"
        assert await h.plan(12) == ([(1, 2)], Planned(0, 0, []))

    async def test_version_whose_state_moved_on_is_dropped(self, hold_db: HoldDb) -> None:
        h = hold_db
        e1, e2 = event_id("aa", 0), event_id("bb", 0)
        await h.event(1, e1, 5)
        await h.event(1, e2, 10)
        await h.version(1, 2, "s2", [e2])
        await h.state(1, "s2")
        await h.waiting(1, 2)
        await h.retract(e2)
        await h.state(1, "s1")  # the state without it, not rendered yet
        assert await h.plan(20) == ([], Planned(0, 0, [(1, 2, "retracted")]))

        # The state comes back (the event re-mined in a later batch): the worker announces
        # v2 again, still the newest, and the intake makes it wait again.
        await h.event(1, event_id("cc", 0), 11)
        await h.state(1, "s2")
        recorded = await h.outbox.record_updates([update(1, 2)], BINDINGS)
        assert (recorded.new, recorded.refused) == (1, [])
        assert await h.plan(11) == ([(1, 2)], Planned(0, 0, []))

    async def test_state_moved_on_by_a_new_event_still_announces(self, hold_db: HoldDb) -> None:
        """No reorg: a new event moved the state on, and its version is not published (yet,
        or ever: curation may reject it). The held version is still announced; only a newer
        version supersedes it."""
        h = hold_db
        e2, e3 = event_id("bb", 0), event_id("cc", 0)
        await h.event(1, e2, 10)
        await h.event(1, e3, 11)
        await h.version(1, 2, "s2", [e2])
        await h.state(1, "s3")
        await h.waiting(1, 2)
        assert await h.plan(10) == ([(1, 2)], Planned(0, 0, []))

    async def test_a_collection_wide_event_holds_the_version(self, hold_db: HoldDb) -> None:
        """A collection-wide event travels under another key and may be applied before an
        earlier block's token event: the version's state may include it, so it holds too."""
        h = hold_db
        e1 = event_id("aa", 0)
        await h.event(1, e1, 10)
        await h.event(-1, event_id("ff", 0), 20)  # SeasonChanged, stored under token -1
        await h.version(1, 1, "s1", [e1])
        await h.state(1, "s1")
        await h.waiting(1, 1)
        assert await h.plan(15) == ([], Planned(0, 1, []))
        assert await h.plan(20) == ([(1, 1)], Planned(0, 0, []))

    async def test_hold_block_is_the_versions_own_events(self, hold_db: HoldDb) -> None:
        """A busy token: events after its version (no new state) do not hold it; a version of
        no chain event (a feed change) holds for every stored event of the token."""
        h = hold_db
        e1 = event_id("aa", 0, part=2)  # an ERC-1155 batch's id, fanned out per token
        later = event_id("dd", 0)
        await h.event(1, e1, 5)
        await h.version(1, 1, "s1", [e1])
        await h.state(1, "s1")
        await h.event(1, later, 50)  # a Transfer no rule reads: no version
        await h.waiting(1, 1)
        assert await h.plan(5) == ([(1, 1)], Planned(0, 0, []))

        await h.event(2, event_id("ee", 0), 40)
        await h.version(2, 1, "f1", ["feed:eth-usd"])
        await h.state(2, "f1")
        await h.waiting(2, 1)
        # (token 1 waits on: the planner here makes no push)
        assert await h.plan(39) == ([(1, 1)], Planned(0, 1, []))
        assert await h.plan(40) == ([(1, 1), (2, 1)], Planned(0, 0, []))

    async def test_collections_of_other_contracts_never_count(self, hold_db: HoldDb) -> None:
        """Another chain's collection with the same token, version and CID (its name sorts
        first) neither drops nor holds this contract's update."""
        h = hold_db
        e1 = event_id("aa", 0)
        await h.event(1, e1, 5)
        await h.version(1, 1, "s1", [e1])
        await h.state(1, "s1")
        await h.event(1, f"{OTHER_CHAIN}:0xff:0", 900, collection="a-other")
        await h.version(1, 1, "x1", [f"{OTHER_CHAIN}:0xff:0"], collection="a-other")
        await h.version(1, 2, "x2", [f"{OTHER_CHAIN}:0xff:0"], collection="a-other")
        await h.state(1, "x2", collection="a-other")
        await h.waiting(1, 1)
        assert await h.plan(5) == ([(1, 1)], Planned(0, 0, []))


class TestSupersededPerCollection:
    async def test_newer_version_of_another_bound_collection_does_not_refuse(
        self, hold_db: HoldDb
    ) -> None:
        """Two collections bound to one contract: a newer version recorded for one does not
        make the other's version a rollback."""
        h = hold_db
        both = {(HOLD_CHAIN, HOLD_CONTRACT): ("c", "d")}
        await h.version(1, 3, "d3", [], collection="d")
        await h.conn.execute(
            "update token_versions set metadata_cid = 'cid-1-3' where collection = 'd'"
        )
        assert (await h.outbox.record_updates([update(1, 3)], both)).new == 1
        await h.version(1, 2, "c2", [])
        recorded = await h.outbox.record_updates([update(1, 2)], both)
        assert (recorded.new, recorded.refused) == (1, [])
        await h.version(1, 1, "c1", [])
        recorded = await h.outbox.record_updates([update(1, 1)], both)
        assert [(r.version, why) for r, why in recorded.refused] == [(1, "superseded")]


class TestKeyChange:
    async def test_open_pushes_of_another_sender_are_reported(self, hold_db: HoldDb) -> None:
        h = hold_db
        old = "0x" + "cc" * 20
        for state in ("sent", "confirmed"):
            await h.conn.execute(
                "insert into pusher_pushes (chain_id, contract, sender, mode, first_token, "
                "last_token, token_count, calldata, state) "
                "values ($1, $2, $3, 'erc4906', 1, 1, 1, '\\x00', $4)",
                HOLD_CHAIN,
                HOLD_CONTRACT,
                old,
                state,
            )
        mine = [HOLD_CONTRACT]
        assert await h.outbox.others_open(HOLD_CHAIN, mine) == {old: 1}
        assert await h.outbox.others_open(OTHER_CHAIN, mine) == {}
        assert await h.outbox.others_open(HOLD_CHAIN, ["0x" + "ef" * 20]) == {}
        assert await Outbox(h.outbox._pool, sender=old).others_open(HOLD_CHAIN, mine) == {}
