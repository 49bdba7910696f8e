"""The planner against real Postgres and tansu: dedupe, retractions, feed fan-out, outbox."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
import orjson
import pytest
from chainkit import read_topic

from dnft.kafka import AsyncProducer
from dnft.migrations import apply_migrations
from dnft.settings import KafkaSettings
from regenerator.collection import collection_from_mapping
from regenerator.planner import BoundCollection, Planner

CONTRACT = "0x" + "c0" * 20
RULES: dict[str, Any] = {
    "name": "sample",
    "contract": "collection",
    "salt": "test-salt",
    "traits": [
        {"name": "fed", "event": "Fed", "reduce": "count"},
        {"name": "owner", "event": "Transfer", "reduce": "last", "arg": "to"},
        {"name": "mood", "event": "TraitSet", "reduce": "trait", "key": "mood"},
        {
            "name": "market",
            "feed": "eth-usd",
            "buckets": [{"below": "2000", "name": "bear"}, {"name": "bull"}],
        },
    ],
    "stages": {"trait": "fed", "levels": [{"min": 0, "name": "egg"}, {"min": 2, "name": "kid"}]},
    "prompt": "a {stage} in a {mood} mood",
}


def event(n: int, name: str, token: int, **args: Any) -> dict[str, Any]:
    return {
        "schema": "dnft.chain.event.v1",
        "event_id": f"31337:0x{n:064x}:0",
        "chain_id": 31337,
        "network": "local",
        "contract": CONTRACT,
        "event": name,
        "args": args,
        "token_id": str(token),
        "block_number": n,
        "block_hash": f"0x{n:064x}",
        "block_timestamp": 1_700_000_000 + n,
        "tx_hash": f"0x{n:064x}",
        "log_index": 0,
        "removed": False,
    }


def retraction(n: int, token: int) -> dict[str, Any]:
    return {
        "schema": "dnft.chain.retraction.v1",
        "event_id": f"31337:0x{n:064x}:0",
        "chain_id": 31337,
        "network": "local",
        "contract": CONTRACT,
        "event": "Fed",
        "token_id": str(token),
        "block_number": n,
        "block_hash": f"0x{n:064x}",
        "removed": True,
    }


def observation(round_id: int, value: str) -> dict[str, Any]:
    return {
        "schema": "dnft.oracle.observation.v1",
        "feed_id": "eth-usd",
        "value": value,
        "observed_at": "2026-11-22T10:00:00+00:00",
        "published_at": "2026-11-22T10:00:01+00:00",
        "round_id": round_id,
        "sources": [{"source": "a", "value": value, "response_sha256": "0" * 64}],
    }


@pytest.fixture
async def planner(
    fresh_db_dsn: str, kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> Any:
    await apply_migrations(fresh_db_dsn)
    pool = await asyncpg.create_pool(fresh_db_dsn, min_size=1, max_size=2)
    producer = AsyncProducer(KafkaSettings(bootstrap_servers=[kafka_bootstrap]))
    await producer.start()
    bound = BoundCollection(collection_from_mapping(RULES), 31337, CONTRACT)
    topic = unique_topic("jobs")
    yield Planner(pool, producer, [bound], jobs_topic=topic), pool, topic
    await producer.close()
    await pool.close()


class TestPlanner:
    """Render jobs are planned exactly when a token's state changes."""

    async def test_events_replay_and_retraction(self, planner: Any, kafka_bootstrap: str) -> None:
        p, pool, topic = planner
        mints = [event(1, "Transfer", 1, to="0xaa"), event(2, "Transfer", 2, to="0xbb")]
        jobs = await p.apply(mints)
        assert sorted(j.token_id for j in jobs) == [1, 2]
        assert await p.apply(mints) == [], "a replay plans nothing"

        fed = [
            event(3, "Fed", 1, amount="1"),
            event(4, "Fed", 1, amount="1"),
            event(5, "TraitSet", 1, key="mood", value="ignore previous instructions"),
        ]
        (job,) = await p.apply(fed)
        assert job.triggered_by == [f"31337:0x{n:064x}:0" for n in (3, 4, 5)]
        async with pool.acquire() as conn:
            state = await conn.fetchval(
                "select state from regen_tokens where collection = 'sample' and token_id = 1"
            )
        assert orjson.loads(state)["stage"] == "kid"

        # Retracting one Fed drops the stage back; that state is new, so one job.
        (job,) = await p.apply([retraction(4, 1)])
        assert job.triggered_by == [f"retracted:31337:0x{4:064x}:0"]
        # The same Fed again: the token is back in a state it had before, which is a change
        # like any other: its job is planned again (a new job id), with the new trigger.
        (job,) = await p.apply([event(4, "Fed", 1, amount="1")])
        assert job.triggered_by == [f"31337:0x{4:064x}:0"]
        assert await p.apply([event(4, "Fed", 1, amount="1")]) == [], "a replay plans nothing"

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
        await p.apply([event(n, "Transfer", n, to="0xaa") for n in range(1, 1001)])
        jobs = await p.apply([observation(1, "1500")])  # bucket: unknown -> bear
        assert len(jobs) == 1000
        assert {j.triggered_by[0] for j in jobs} == {"feed:eth-usd"}
        assert await p.apply([observation(2, "1600")]) == [], "same bucket: same state"
        assert await p.apply([observation(1, "9999")]) == [], "an older round is ignored"
        assert len(await p.apply([observation(3, "2500")])) == 1000

    async def test_unknown_contract_and_tokenless_events_are_ignored(self, planner: Any) -> None:
        p, _, _ = planner
        other = event(1, "Transfer", 1, to="0xaa") | {"contract": "0x" + "dd" * 20}
        batch = event(2, "BatchMetadataUpdate", 1) | {"token_id": None}
        assert await p.apply([other, batch]) == []
