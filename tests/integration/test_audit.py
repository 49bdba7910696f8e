"""`dnft audit` against real anvil, tansu and Postgres after a real indexer and planner run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from audit import read_topic as read_whole_topic
from audit import run_audit
from dnft.config import KafkaSettings, Settings, settings_from_mapping
from dnft.devservices import AnvilService
from dnft.kafka import AsyncProducer, OutgoingMessage, ensure_topics
from regenerator.planner import Planner
from tests.support.chain import World, chain_stream, make_world
from tests.support.cli import run_dnft_in_process, write_config
from tests.support.indexer import IndexerConfigFor, index_to_head
from tests.support.messages import chain_inputs
from tests.support.regenerator import configured_planner

pytestmark = pytest.mark.usefixtures("no_dnft_env")
SAMPLE_COLLECTION = Path("collections/sample.yaml").resolve()
QUIET_S = "0.5"  # tansu under-reports ends; a short quiet period keeps the tests fast


@dataclass
class Pipeline:
    """A chain indexed into Kafka and applied by the planner into Postgres."""

    world: World
    config: dict[str, Any]
    settings: Settings
    messages: list[dict[str, Any]]  # the indexer's topic, in partition order
    head: int
    planner: Planner
    pool: asyncpg.Pool
    producer: AsyncProducer
    tmp_path: Path
    unique_topic: Callable[[str], str]

    def config_file(self, topic: str | None = None) -> Path:
        config = orjson.loads(orjson.dumps(self.config))
        if topic is not None:
            config["kafka"]["topics"]["chain_events"] = topic
        return write_config(self.tmp_path / f"dnft-{topic or 'main'}.yaml", config)

    async def audit(
        self, *, topic: str | None = None, to_block: int | None = None, json: bool = True
    ) -> tuple[int, str, str]:
        """Run the real CLI (in a thread: it owns its event loop); (exit code, out, err)."""
        to_block = self.head if to_block is None else to_block
        args = ["audit", "--network", "local", "--from-block", "0", "--to-block", str(to_block)]
        args += ["--quiet-s", QUIET_S, *(["--json"] if json else [])]
        return await asyncio.to_thread(run_dnft_in_process, self.config_file(topic), *args)

    async def copy_topic(self, messages: list[dict[str, Any]]) -> str:
        """A new topic holding ``messages`` (as the indexer keyed them), acknowledged."""
        topic = self.unique_topic("audit")
        await ensure_topics(self.settings.kafka, {topic: 3})
        await self.producer.send_many(
            [
                OutgoingMessage(
                    topic,
                    value=orjson.dumps({k: v for k, v in m.items() if not k.startswith("_")}),
                    key=m["_key"].encode(),
                )
                for m in messages
            ]
        )
        return topic


@pytest.fixture
async def pipeline(
    fresh_anvil: AnvilService,
    indexer_config_for: IndexerConfigFor,
    tmp_path: Path,
    unique_topic: Callable[[str], str],
) -> AsyncIterator[Pipeline]:
    world = await make_world(fresh_anvil.rpc_url, mint_count=12)
    for i in range(1, 6):
        await world.feed(i, amount=i)
    await world.set_trait(2, "mood", "sleepy")
    config = indexer_config_for(world) | {"collections": [{"file": str(SAMPLE_COLLECTION)}]}
    settings = settings_from_mapping(config, {})
    head = await index_to_head(settings, world)
    messages = await asyncio.to_thread(chain_stream, settings)
    async with configured_planner(settings, unique_topic("jobs")) as (planner, pool, producer):
        await planner.apply(chain_inputs(messages))
        yield Pipeline(
            world, config, settings, messages, head, planner, pool, producer, tmp_path, unique_topic
        )


def fed_message(p: Pipeline) -> dict[str, Any]:
    return next(m for m in p.messages if m["event"] == "Fed")


def forged(m: dict[str, Any], block_hash: str, **changes: Any) -> dict[str, Any]:
    """``m`` as if read under another block hash (same tx and log index unless changed)."""
    out = {**m, **changes, "block_hash": block_hash}
    out["event_id"] = f"{m['chain_id']}:{block_hash}:{out['log_index']}"
    return out


class TestCleanAudit:
    """After a real indexer and planner run, every source matches the chain."""

    async def test_clean_then_repeats_are_harmless(self, pipeline: Pipeline) -> None:
        code, out, err = await pipeline.audit()
        assert code == 0, out + err
        report = orjson.loads(out)
        assert report["clean"] is True
        chain_events = report["chain"]["events"]
        assert chain_events == len(pipeline.messages) > 12
        assert report["kafka"]["records_read"] == len(pipeline.messages)
        assert report["kafka"]["repeats"] == 0
        # The planner stores only events naming a token (not OwnershipTransferred).
        assert 12 + 5 + 1 <= report["postgres"]["expected"] < chain_events
        assert report["postgres"]["present"] == report["postgres"]["expected"]

        # A crash between publish and checkpoint republishes with the same id: not a failure.
        topic = await pipeline.copy_topic([*pipeline.messages, fed_message(pipeline)])
        code, out, err = await pipeline.audit(topic=topic, json=False)
        assert code == 0, out + err
        assert "1 repeat(s), harmless: consumers dedupe by event id" in out
        assert f"{len(pipeline.messages) + 1} record(s) read" in out
        assert "result: clean" in out


class TestMismatches:
    """Each kind of damage is reported with its event id and block, and exits 1."""

    async def test_missing(self, pipeline: Pipeline) -> None:
        gone = fed_message(pipeline)
        topic = await pipeline.copy_topic([m for m in pipeline.messages if m is not gone])
        async with pipeline.pool.acquire() as conn:
            deleted = await conn.execute(
                "delete from regen_events where event_id = $1", gone["event_id"]
            )
        assert deleted == "DELETE 1"
        code, out, err = await pipeline.audit(topic=topic)
        assert code == 1, out + err
        report = orjson.loads(out)
        for source in ("kafka", "postgres"):
            assert [e["event_id"] for e in report[source]["missing"]] == [gone["event_id"]]
            assert report[source]["missing"][0]["block_number"] == gone["block_number"]
            assert report[source]["extra"] == report[source]["duplicated"] == []
        code, text, _ = await pipeline.audit(topic=topic, json=False)
        assert code == 1
        assert f"block {gone['block_number']}  {gone['event_id']}" in text
        assert "result: MISMATCH" in text

    async def test_extra_event_of_a_block_not_on_chain(self, pipeline: Pipeline) -> None:
        template = fed_message(pipeline)
        orphan = forged(template, "0x" + "0e" * 32, tx_hash="0x" + "77" * 32, log_index=9)
        topic = await pipeline.copy_topic([*pipeline.messages, orphan])
        await pipeline.planner.apply(chain_inputs([orphan]))  # a retraction that never came
        code, out, err = await pipeline.audit(topic=topic)
        assert code == 1, out + err
        report = orjson.loads(out)
        for source in ("kafka", "postgres"):
            assert [e["event_id"] for e in report[source]["extra"]] == [orphan["event_id"]]
            assert report[source]["missing"] == report[source]["duplicated"] == []

    async def test_same_log_under_two_block_hashes(self, pipeline: Pipeline) -> None:
        original = fed_message(pipeline)
        twin = forged(original, "0x" + "0d" * 32)
        topic = await pipeline.copy_topic([*pipeline.messages, twin])
        await pipeline.planner.apply(chain_inputs([twin]))
        code, out, err = await pipeline.audit(topic=topic)
        assert code == 1, out + err
        report = orjson.loads(out)
        for source in ("kafka", "postgres"):
            (dup,) = report[source]["duplicated"]
            assert dup["tx_hash"] == original["tx_hash"]
            assert dup["log_index"] == original["log_index"]
            assert {e["event_id"] for e in dup["events"]} == {
                original["event_id"],
                twin["event_id"],
            }
            assert dup["on_chain"] == original["event_id"]
            assert report[source]["missing"] == report[source]["extra"] == []


class TestTopicReader:
    """The reader goes past the end offsets the broker reports until the topic is quiet."""

    async def test_reads_every_record(
        self, kafka_bootstrap: str, unique_topic: Callable[[str], str]
    ) -> None:
        settings = KafkaSettings(bootstrap_servers=[kafka_bootstrap])
        topic = unique_topic("reader")
        await ensure_topics(settings, {topic: 1})
        producer = AsyncProducer(settings)
        await producer.start()
        try:
            # One big batch: more records than one poll returns (max_poll_records 500).
            await producer.send_many(
                [OutgoingMessage(topic, value=orjson.dumps({"n": i})) for i in range(1500)]
            )
        finally:
            await producer.close()
        read = await asyncio.to_thread(
            read_whole_topic, settings, topic, lambda body: body["n"] % 2 == 0, quiet_s=0.5
        )
        assert read.records == 1500
        assert [body["n"] for body in read.kept] == list(range(0, 1500, 2))
        assert read.end_offsets <= 1500  # tansu reports less (the reason for the quiet period)


class TestUsageErrors:
    """A range the chain does not have yet is refused clearly, before reading anything."""

    async def test_range_above_head(self, pipeline: Pipeline) -> None:
        code, out, err = await pipeline.audit(to_block=pipeline.head + 100)
        assert code == 2
        assert out == ""
        assert f"above the chain head of network 'local' ({pipeline.head})" in err

    async def test_unknown_network_and_in_process_api(self, pipeline: Pipeline) -> None:
        args = ["audit", "--network", "nope", "--from-block", "0", "--to-block", "1"]
        code, _, err = await asyncio.to_thread(run_dnft_in_process, pipeline.config_file(), *args)
        assert code == 2
        assert "no network named 'nope'" in err
        report = await run_audit(pipeline.settings, "local", 0, pipeline.head, quiet_s=0.5)
        assert report.clean
        assert report.checkpoint is not None
        assert report.checkpoint.block_number >= pipeline.head
