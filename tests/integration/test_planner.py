"""The planner against real Postgres and tansu: dedupe, retractions, feed fan-out, outbox,
collection-wide events."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import orjson
import pytest

from dnft.collection import BoundCollection, collection_from_mapping
from dnft.config import KafkaSettings
from dnft.kafka import AsyncProducer
from regenerator import Planner
from tests.support.kafka import read_topic
from tests.support.messages import CONTRACT, chain_inputs, event, observation, retraction
from tests.support.regenerator import VersionMakerFor
from tests.support.rules import FED, RULES, collection_rules


@pytest.fixture
async def planner(
    version_maker_for: VersionMakerFor,
) -> AsyncIterator[tuple[Planner, asyncpg.Pool, str]]:
    """The planner of the regenerator rules on this test's database, its pool and jobs topic."""
    async with version_maker_for(RULES, pool_size=2) as maker:
        yield maker.planner, maker.pool, maker.jobs_topic


class TestPlanner:
    """Render jobs are planned exactly when a token's state changes."""

    async def test_events_replay_and_retraction(self, planner: Any, kafka_bootstrap: str) -> None:
        p, pool, topic = planner
        mints = [event(1, "Transfer", 1, to="0xaa"), event(2, "Transfer", 2, to="0xbb")]
        jobs = await p.apply(chain_inputs(mints))
        assert sorted(j.token_id for j in jobs) == [1, 2]
        assert await p.apply(chain_inputs(mints)) == [], "a replay plans nothing"

        fed = [
            event(3, "Fed", 1, amount="1"),
            event(4, "Fed", 1, amount="1"),
            event(5, "TraitSet", 1, key="mood", value="ignore previous instructions"),
        ]
        (job,) = await p.apply(chain_inputs(fed))
        assert job.triggered_by == [f"31337:0x{n:064x}:0" for n in (3, 4, 5)]
        async with pool.acquire() as conn:
            state = await conn.fetchval(
                "select state from regen_tokens where collection = 'sample' and token_id = 1"
            )
        assert orjson.loads(state)["stage"] == "kid"

        # Retracting one Fed drops the stage back; that state is new, so one job.
        (job,) = await p.apply(chain_inputs([retraction(4, 1)]))
        assert job.triggered_by == [f"retracted:31337:0x{4:064x}:0"]
        # The same Fed again: the token is back in a state it had before, which is a change
        # like any other: its job is planned again (a new job id), with the new trigger.
        (job,) = await p.apply(chain_inputs([event(4, "Fed", 1, amount="1")]))
        assert job.triggered_by == [f"31337:0x{4:064x}:0"]
        assert await p.apply(chain_inputs([event(4, "Fed", 1, amount="1")])) == [], (
            "a replay plans nothing"
        )

        messages = read_topic(kafka_bootstrap, topic)
        assert len(messages) == 5
        assert {m["schema"] for m in messages} == {"dnft.render.job.v1"}
        assert len({m["job_id"] for m in messages}) == 5
        again = [m for m in messages if m["state_hash"] == job.state_hash]
        assert len(again) == 2, "the state's job was sent twice"
        assert again[0]["triggered_by"] != again[1]["triggered_by"]
        async with pool.acquire() as conn:
            unsent = await conn.fetchval(
                "select count(*) from regen_render_jobs where sent_at is null"
            )
        assert unsent == 0

    async def test_feed_change_fans_out_to_every_token(self, planner: Any) -> None:
        p, _, _ = planner
        await p.apply(chain_inputs([event(n, "Transfer", n, to="0xaa") for n in range(1, 1001)]))
        jobs = await p.apply(chain_inputs([observation(1, "1500")]))  # bucket: unknown -> bear
        assert len(jobs) == 1000
        assert {j.triggered_by[0] for j in jobs} == {"feed:eth-usd"}
        assert await p.apply(chain_inputs([observation(2, "1600")])) == [], (
            "same bucket: same state"
        )
        assert await p.apply(chain_inputs([observation(1, "9999")])) == [], (
            "an older round is ignored"
        )
        assert len(await p.apply(chain_inputs([observation(3, "2500")]))) == 1000

    async def test_unknown_contract_and_tokenless_events_are_ignored(self, planner: Any) -> None:
        p, _, _ = planner
        other = event(1, "Transfer", 1, to="0xaa") | {"contract": "0x" + "dd" * 20}
        batch = event(2, "BatchMetadataUpdate", 1) | {"token_id": None}
        assert await p.apply(chain_inputs([other, batch])) == []


SEASON = {"name": "season", "event": "SeasonChanged", "reduce": "last", "arg": "season"}
OTHER_CONTRACT = "0x" + "d1" * 20


def season_changed(n: int, season: str, contract: str = CONTRACT) -> dict[str, Any]:
    """A collection-wide SeasonChanged (``token: none``: no token id) alone in block ``n``."""
    return event(n, "SeasonChanged", 0, season=season) | {"token_id": None, "contract": contract}


@pytest.fixture
async def two_collections(
    db: str, kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> AsyncIterator[tuple[Planner, asyncpg.Pool, str]]:
    """One planner for collection ``sample`` (CONTRACT) and ``other`` (OTHER_CONTRACT), both
    with a ``season`` trait from the collection-wide SeasonChanged; its pool and jobs topic."""
    base = collection_rules(
        FED, SEASON, salt="s", levels={0: "egg"}, prompt="a {stage} in {season}"
    )
    bound = [
        BoundCollection(collection_from_mapping(base), 31337, CONTRACT),
        BoundCollection(collection_from_mapping(base | {"name": "other"}), 31337, OTHER_CONTRACT),
    ]
    topic = unique_topic("jobs")
    pool = await asyncpg.create_pool(db, min_size=1, max_size=2)
    producer = AsyncProducer(KafkaSettings(bootstrap_servers=[kafka_bootstrap]))
    await producer.start()
    try:
        yield Planner(pool, producer, bound, jobs_topic=topic), pool, topic
    finally:
        await producer.close()
        await pool.close()


class TestCollectionWideEvents:
    """An event of no token that the rules read re-renders every token of its collection."""

    async def test_fans_out_to_its_collection_only(
        self, two_collections: tuple[Planner, asyncpg.Pool, str], kafka_bootstrap: str
    ) -> None:
        p, pool, topic = two_collections
        mine = [event(n, "Transfer", n, to="0xaa") for n in range(1, 4)]
        theirs = [event(n, "Transfer", n, to="0xaa") | {"contract": OTHER_CONTRACT} for n in (4, 5)]
        assert len(await p.apply(chain_inputs(mine + theirs))) == 5

        jobs = await p.apply(chain_inputs([season_changed(10, "winter")]))
        wide_id = f"31337:0x{10:064x}:0"
        assert {(j.collection, j.token_id) for j in jobs} == {("sample", n) for n in (1, 2, 3)}
        assert {tuple(j.triggered_by) for j in jobs} == {(wide_id,)}
        assert await p.apply(chain_inputs([season_changed(10, "winter")])) == [], "a replay"

        # A token minted later derives its state with the season already in it.
        (late,) = await p.apply(chain_inputs([event(11, "Transfer", 6, to="0xbb")]))
        async with pool.acquire() as conn:
            states = {
                int(r["token_id"]): orjson.loads(r["state"])["traits"]["season"]
                for r in await conn.fetch(
                    "select token_id, state from regen_tokens where collection = $1", "sample"
                )
            }
            other = await conn.fetch("select state from regen_tokens where collection = 'other'")
        assert late.token_id == 6
        assert states == {1: "winter", 2: "winter", 3: "winter", 6: "winter"}
        assert all(orjson.loads(r["state"])["traits"]["season"] != "winter" for r in other)

        # Its retraction (a reorg) fans out again: every token of the collection goes back.
        retracted = retraction(10, 0) | {"token_id": None, "event": "SeasonChanged"}
        undone = await p.apply(chain_inputs([retracted]))
        assert {j.token_id for j in undone} == {1, 2, 3, 6}
        assert {tuple(j.triggered_by) for j in undone} == {(f"retracted:{wide_id}",)}

        sent = Counter(m["collection"] for m in read_topic(kafka_bootstrap, topic))
        assert sent == {"sample": 3 + 3 + 1 + 4, "other": 2}, "other: only its own mints"

    async def test_a_fan_out_waits_for_another_replicas_token_batch(
        self, two_collections: tuple[Planner, asyncpg.Pool, str], kafka_bootstrap: str
    ) -> None:
        # Two planner replicas on different partitions: A stores token 1's Fed and has
        # recomputed it but not committed when B applies a collection-wide event. B must wait
        # for A, or it recomputes token 1 without the Fed and its write, landing last, loses it.
        a, pool, topic = two_collections
        await a.apply(chain_inputs([event(1, "Transfer", 1, to="0xaa")]))
        b = Planner(pool, a._producer, list(a._by_name.values()), jobs_topic=topic)
        recomputed, commit = asyncio.Event(), asyncio.Event()
        recompute = a._recompute

        async def paused(*args: Any) -> list[Any]:
            jobs = await recompute(*args)
            recomputed.set()
            await commit.wait()  # A's transaction stays open here
            return jobs

        a._recompute = paused  # type: ignore[method-assign,assignment]
        fed = asyncio.create_task(a.apply(chain_inputs([event(2, "Fed", 1, amount="5")])))
        await asyncio.wait_for(recomputed.wait(), 10)
        wide = asyncio.create_task(b.apply(chain_inputs([season_changed(3, "winter")])))
        await asyncio.sleep(0.5)
        commit.set()
        await asyncio.wait_for(asyncio.gather(fed, wide), 10)
        async with pool.acquire() as conn:
            state = await conn.fetchval(
                "select state from regen_tokens where collection = 'sample' and token_id = 1"
            )
        traits = orjson.loads(state)["traits"]
        assert (traits["fed"], traits["season"]) == ("1", "winter")

    async def test_the_other_collection_fans_out_on_its_own_event(
        self, two_collections: tuple[Planner, asyncpg.Pool, str]
    ) -> None:
        p, _, _ = two_collections
        await p.apply(chain_inputs([event(n, "Transfer", n, to="0xaa") for n in (1, 2)]))
        await p.apply(
            chain_inputs([event(3, "Transfer", 1, to="0xaa") | {"contract": OTHER_CONTRACT}])
        )
        jobs = await p.apply(chain_inputs([season_changed(4, "spring", OTHER_CONTRACT)]))
        assert [(j.collection, j.token_id) for j in jobs] == [("other", 1)]
