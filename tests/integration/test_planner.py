"""The planner against real Postgres and tansu: dedupe, retractions, feed fan-out, outbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
import pytest

from regenerator import Planner
from tests.support.kafka import read_topic
from tests.support.messages import chain_inputs, event, observation, retraction
from tests.support.regenerator import VersionMakerFor
from tests.support.rules import RULES


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
