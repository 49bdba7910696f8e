"""`dnft status` against real anvil, tansu and Postgres: every stage's lag, and outages."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from dnft.config import settings_from_mapping
from dnft.devservices import AnvilService, free_port, rpc_call
from dnft.kafka import ensure_topics
from indexer import Checkpoint, CheckpointStore
from tests.support.chain import COLLECTION_ABI
from tests.support.cli import run_dnft_in_process, write_config

pytestmark = pytest.mark.usefixtures("no_dnft_env")
SAMPLE_COLLECTION = Path("collections/sample.yaml").resolve()
CONTRACT = "0x" + "11" * 20


StatusConfig = Callable[[str, str], dict[str, Any]]


@pytest.fixture
def status_config(fresh_anvil: AnvilService, unique_topic: Callable[[str], str]) -> StatusConfig:
    """``status_config(bootstrap, dsn)``: every stage configured, on this test's chain."""

    def make(bootstrap: str, dsn: str) -> dict[str, Any]:
        return every_stage(fresh_anvil.rpc_url, bootstrap, dsn, unique_topic)

    return make


def every_stage(
    rpc_url: str, bootstrap: str, dsn: str, topic: Callable[[str], str]
) -> dict[str, Any]:
    return {
        "networks": [{"name": "local", "chain_id": 31337, "rpc_urls": [rpc_url]}],
        "contracts": [
            {
                "name": "collection",
                "network": "local",
                "address": CONTRACT,
                "abi": COLLECTION_ABI,
            }
        ],
        "kafka": {
            "bootstrap_servers": [bootstrap],
            "topics": {
                "chain_events": topic("chain"),
                "oracle_observations": topic("observations"),
                "render_jobs": topic("jobs"),
                "metadata_updates": topic("updates"),
            },
        },
        "postgres": {"dsn": dsn},
        "collections": [{"file": str(SAMPLE_COLLECTION)}],
        "pusher": {
            "group": topic("pusher-group"),
            "collections": [{"contract": "collection"}],
            "signer": {"key_env": "DNFT_STATUS_TEST_KEY"},
        },
        "regenerator": {"planner_group": topic("planner"), "render_group": topic("render")},
        "feeds": [
            {"id": "eth-usd", "kind": "http", "url": "http://127.0.0.1:9/", "value_path": "p"},
            {"id": "btc-usd", "kind": "http", "url": "http://127.0.0.1:9/", "value_path": "p"},
        ],
    }


def run_status(config: dict[str, Any], tmp_path: Path, *extra: str) -> tuple[int, str, str]:
    return run_dnft_in_process(write_config(tmp_path / "dnft.yaml", config), "status", *extra)


def produce_one_by_one(bootstrap: str, topic: str, count: int) -> None:
    """One record per batch: tansu then reports exact end offsets (it under-reports the end
    of a partition written in multi-record batches)."""
    producer = KafkaProducer(bootstrap_servers=[bootstrap])
    try:
        for i in range(count):
            producer.send(topic, value=b"{}", key=str(i).encode(), partition=0)
            producer.flush()
    finally:
        producer.close()


def commit(bootstrap: str, group: str, topic: str, offset: int) -> None:
    consumer = KafkaConsumer(bootstrap_servers=[bootstrap], group_id=group)
    try:
        consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(offset, "", -1)})
    finally:
        consumer.close()


async def mine(anvil: AnvilService, blocks: int) -> None:
    await asyncio.to_thread(rpc_call, anvil.rpc_url, "anvil_mine", [blocks])


async def seed_postgres(dsn: str, checkpoint: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await CheckpointStore(conn, "local").advance_finalized(Checkpoint(checkpoint, "0x01"))
        await conn.execute(
            "insert into regen_render_jobs (collection, token_id, state_hash, seed, triggered_by,"
            " planned_at, sent_at) values"
            " ('sample', 1, 'a', 1, '[]', now() - interval '40 seconds', null),"
            " ('sample', 2, 'b', 1, '[]', now(), null),"
            " ('sample', 3, 'c', 1, '[]', now(), now())"
        )
        await conn.execute(
            "insert into regen_tokens (collection, token_id, state, state_hash) values"
            " ('sample', 1, '{}', 'a'), ('sample', 2, '{}', 'b'), ('sample', 3, '{}', 'c')"
        )
        await conn.execute(
            "insert into token_versions (collection, token_id, version, state_hash, state,"
            " image_sha256, image_cid, metadata_sha256, metadata_cid, metadata, triggered_by)"
            " values ('sample', 3, 1, 'c', '{}', 'x', 'x', 'x', 'x', '{}', '[]')"
        )
        await conn.execute(
            "insert into pusher_updates (chain_id, contract, token_id, version, metadata_uri,"
            " metadata_cid, created_at, confirmed_at) values"
            " (31337, $1, 1, 1, 'u', 'c', now() - interval '90 seconds', null),"
            " (31337, $1, 2, 1, 'u', 'c', now(), null),"
            " (31337, $1, 3, 1, 'u', 'c', now(), now())",
            CONTRACT,
        )
        await conn.execute(
            "insert into oracle_feed_state (feed_id, round_id, value, published_at)"
            " values ('eth-usd', 5, 3000, now() - interval '30 seconds')"
        )
    finally:
        await conn.close()


class TestStatus:
    """One table shows every stage against real services, and survives an outage."""

    async def test_every_stage(
        self,
        fresh_anvil: AnvilService,
        status_config: StatusConfig,
        kafka_bootstrap: str,
        db: str,
        tmp_path: Path,
    ) -> None:
        config = status_config(kafka_bootstrap, db)
        settings = settings_from_mapping(config, {})
        topics = settings.kafka.topics
        await ensure_topics(
            settings.kafka,
            dict.fromkeys((topics.chain_events, topics.oracle_observations, topics.render_jobs), 1),
        )
        await asyncio.to_thread(produce_one_by_one, kafka_bootstrap, topics.chain_events, 5)
        await asyncio.to_thread(produce_one_by_one, kafka_bootstrap, topics.render_jobs, 2)
        await asyncio.to_thread(
            commit, kafka_bootstrap, settings.regenerator.planner_group, topics.chain_events, 3
        )
        await mine(fresh_anvil, 10)
        await seed_postgres(db, checkpoint=7)

        code, out, err = await asyncio.to_thread(run_status, config, tmp_path, "--json")
        assert code == 0, err
        status = orjson.loads(out)
        (net,) = status["indexer"]
        assert (net["head"], net["checkpoint"], net["lag_blocks"]) == (10, 7, 3)
        lags = {(c["group"], c["topic"]): c for c in status["consumers"]}
        planner_chain = lags[(settings.regenerator.planner_group, topics.chain_events)]
        assert (planner_chain["committed"], planner_chain["end"], planner_chain["lag"]) == (3, 5, 2)
        observations = lags[(settings.regenerator.planner_group, topics.oracle_observations)]
        assert (observations["committed"], observations["lag"]) == (None, 0)
        render_jobs = lags[(settings.regenerator.render_group, topics.render_jobs)]
        assert (render_jobs["committed"], render_jobs["lag"]) == (None, 2)
        assert lags[(settings.pusher.group, topics.metadata_updates)]["exists"] is False
        assert status["render"]["unsent_jobs"] == 2
        assert status["render"]["oldest_unsent_s"] >= 39
        assert status["render"]["tokens_without_version"] == 2
        assert status["pusher"]["pending_updates"] == 2
        assert status["pusher"]["oldest_pending_s"] >= 89
        feeds = {f["feed_id"]: f for f in status["oracle"]}
        assert feeds["eth-usd"]["round_id"] == 5
        assert feeds["eth-usd"]["age_s"] >= 29
        assert feeds["btc-usd"]["round_id"] is None

        code, text, err = await asyncio.to_thread(run_status, config, tmp_path)
        assert code == 0, err
        lines = text.splitlines()
        assert lines[0].split() == ["STAGE", "ITEM", "POSITION", "LAG"]
        assert any(
            line.startswith("indexer") and "head 10, checkpoint 7" in line and "3 blocks" in line
            for line in lines
        )
        assert any(
            f"{settings.regenerator.planner_group} <- {topics.chain_events}" in line
            and "committed 3 of end 5" in line
            and line.endswith("2 records")
            for line in lines
        )
        assert any(line.startswith("render") and "2 unsent job(s)" in line for line in lines)
        assert any(line.startswith("pusher") and "2 update(s) pending" in line for line in lines)
        assert any("eth-usd" in line and "round 5" in line for line in lines)
        assert any("btc-usd" in line and "never published" in line for line in lines)
        assert "unreachable" not in text

    async def test_postgres_and_a_node_unreachable(
        self,
        fresh_anvil: AnvilService,
        status_config: StatusConfig,
        kafka_bootstrap: str,
        tmp_path: Path,
    ) -> None:
        config = status_config(kafka_bootstrap, f"postgresql://dnft@127.0.0.1:{free_port()}/dnft")
        config["networks"].append(
            {"name": "gone", "chain_id": 5, "rpc_urls": [f"http://127.0.0.1:{free_port()}"]}
        )
        await mine(fresh_anvil, 4)

        code, out, err = await asyncio.to_thread(run_status, config, tmp_path, "--json")
        assert code == 0, err
        status = orjson.loads(out)
        local, gone = status["indexer"]
        assert local["head"] == 4
        assert "Postgres at postgresql://dnft@127.0.0.1" in local["checkpoint"]["unreachable"]
        assert "unreachable" in gone["head"]
        assert isinstance(status["consumers"], list)
        assert len(status["consumers"]) == 4, "Kafka stages are still shown"
        for stage in ("render", "pusher", "oracle"):
            assert "unreachable" in status[stage]

        code, text, err = await asyncio.to_thread(run_status, config, tmp_path)
        assert code == 0, err
        assert any(
            line.startswith("render") and "unreachable: " in line for line in text.split("\n")
        )
        assert any("head 4" in line for line in text.splitlines())

    async def test_kafka_unreachable(
        self, status_config: StatusConfig, db: str, tmp_path: Path
    ) -> None:
        config = status_config(f"127.0.0.1:{free_port()}", db)
        await seed_postgres(db, checkpoint=0)
        code, out, err = await asyncio.to_thread(run_status, config, tmp_path, "--json")
        assert code == 0, err
        status = orjson.loads(out)
        assert "Unable to bootstrap" in status["consumers"]["unreachable"]
        assert status["indexer"][0]["checkpoint"] == 0
        assert status["render"]["unsent_jobs"] == 2
