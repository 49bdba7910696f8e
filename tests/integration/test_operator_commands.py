"""Operator commands against real anvil, tansu and Postgres: `dnft replay` (a block range, a
consumer group) re-publishes and rewinds without losing or inventing anything."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from dnft.config import Settings, settings_from_mapping
from dnft.devservices import AnvilService
from dnft.kafka import AsyncProducer, ensure_topics
from dnft.kafka.groups import GroupActiveError, OffsetResetError, Target, apply_reset, plan_reset
from indexer import ReplayRangeError, replay_range
from tests.support.chain import World, canonical_events, chain_stream, make_world
from tests.support.cli import run_dnft, write_config
from tests.support.indexer import IndexerConfigFor


@pytest.fixture
def config(
    indexer_config_for: IndexerConfigFor, unique_topic: Callable[[str], str]
) -> Callable[[World], dict[str, Any]]:
    """An indexer config for a world, with an oracle observations topic of its own."""

    def make(world: World) -> dict[str, Any]:
        raw = indexer_config_for(world)
        raw["kafka"]["topics"]["oracle_observations"] = unique_topic("oracle")
        return raw

    return make


def cli(config: dict[str, Any], tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``dnft ARGS...`` as a subprocess with ``config`` written to ``tmp_path``."""
    return run_dnft(write_config(tmp_path / "dnft.yaml", config), *args)


class TestReplayRange:
    """A replayed block range carries the same event ids as the chain, and nothing else."""

    async def test_replay_republishes_the_same_ids(
        self, fresh_anvil: AnvilService, config: Callable[[World], dict[str, Any]], tmp_path: Path
    ) -> None:
        world = await make_world(fresh_anvil.rpc_url, mint_count=40)
        for token in range(1, 6):
            await world.feed(token, amount=token)
        await world.rpc("anvil_mine", [3])  # confirmations depth 2: every event is final
        head = await world.block_number()
        raw = config(world)
        settings = settings_from_mapping(raw, {})
        expected = set(await canonical_events(world, head))

        dry = await replay_range(settings, "local", 0, head - 2, producer=None)
        assert len(expected) >= 45, "40 mints, 5 feeds, and the deployment's role grants"
        assert dry.events == len(expected)
        assert not dry.published

        producer = AsyncProducer(settings.kafka)
        await producer.start()
        try:
            report = await replay_range(settings, "local", 0, head - 2, producer=producer)
        finally:
            await producer.close()
        assert report.events == len(expected)
        assert report.by_contract == {"collection": len(expected)}
        first = [m["event_id"] for m in chain_stream(settings)]
        assert sorted(first) == sorted(expected), "exactly the chain's events, each once"

        # The CLI, twice over: the same ids again, so consumers drop the repeats.
        done = cli(raw, tmp_path, "replay", "--network", "local", "--from-block", "0",
                   "--to-block", str(head - 2), "--yes")  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert f"published (acknowledged) {len(expected)} events" in done.stdout
        again = [m["event_id"] for m in chain_stream(settings)]
        assert sorted(again) == sorted(first * 2)

    async def test_unfinalized_and_future_blocks_are_refused(
        self, fresh_anvil: AnvilService, config: Callable[[World], dict[str, Any]], tmp_path: Path
    ) -> None:
        world = await make_world(fresh_anvil.rpc_url, mint_count=3)
        head = await world.block_number()
        settings = settings_from_mapping(config(world), {})
        with pytest.raises(ReplayRangeError, match="not final yet"):
            await replay_range(settings, "local", 0, head, producer=None)
        with pytest.raises(ReplayRangeError, match="past the chain head"):
            await replay_range(settings, "local", 0, head + 10, producer=None)
        allowed = await replay_range(
            settings, "local", 0, head, producer=None, allow_unfinalized=True
        )
        assert allowed.events == len(await canonical_events(world, head))
        done = cli(config(world), tmp_path, "replay", "--network", "local", "--from-block",
                   "0", "--to-block", str(head + 10), "--yes")  # fmt: skip
        assert done.returncode != 0
        assert "past the chain head" in done.stderr


@pytest.fixture
def group_topic(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> Iterator[tuple[str, int]]:
    """A 2-partition topic with 10 records per partition; yields (topic, ms between halves)."""
    topic = unique_topic("events")
    producer = KafkaProducer(bootstrap_servers=[kafka_bootstrap])
    admin = KafkaAdminClient(bootstrap_servers=[kafka_bootstrap])
    try:
        from kafka.admin import NewTopic

        admin.create_topics([NewTopic(topic, 2, 1)])
        for i in range(10):
            producer.send(topic, value=b"old", partition=i % 2)
        producer.flush()
        time.sleep(0.05)
        middle = int(time.time() * 1000)
        time.sleep(0.05)
        for i in range(10):
            producer.send(topic, value=b"new", partition=i % 2)
        producer.flush()
        yield topic, middle
    finally:
        producer.close()
        admin.close()


def consume_all(bootstrap: str, group: str, topic: str) -> KafkaConsumer:
    """A live member of ``group`` that has read and committed everything."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=[bootstrap],
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=2000,
    )
    seen, deadline = 0, time.monotonic() + 30
    while seen < 20 and time.monotonic() < deadline:
        seen += sum(len(r) for r in consumer.poll(timeout_ms=500).values())
    assert seen == 20
    consumer.commit()
    return consumer


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    admin = KafkaAdminClient(bootstrap_servers=[bootstrap])
    try:
        offsets = admin.list_group_offsets({group: None}).get(group, {})
    finally:
        admin.close()
    return {tp.partition: o.offset for tp, o in offsets.items() if tp.topic == topic}


class TestReplayConsumer:
    """A consumer group is rewound only while it has no members, to where it was asked."""

    async def test_reset_refused_while_active_then_applied(
        self,
        kafka_bootstrap: str,
        group_topic: tuple[str, int],
        unique_topic: Callable[[str], str],
    ) -> None:
        topic, middle = group_topic
        group = unique_topic("group")
        settings = settings_from_mapping(
            {
                "networks": [{"name": "n", "chain_id": 1, "rpc_urls": ["http://127.0.0.1:1"]}],
                "kafka": {"bootstrap_servers": [kafka_bootstrap]},
                "postgres": {"dsn": "postgresql://127.0.0.1:1/x"},
            },
            {},
        )
        member = await asyncio.to_thread(consume_all, kafka_bootstrap, group, topic)
        try:
            assert committed(kafka_bootstrap, group, topic) == {0: 10, 1: 10}
            moves = plan_reset(settings.kafka, group, [topic], Target(earliest=True))
            assert [(m.partition, m.committed, m.target) for m in moves] == [
                (0, 10, 0),
                (1, 10, 0),
            ]
            with pytest.raises(GroupActiveError, match="1 active member"):
                apply_reset(settings.kafka, group, moves)
            with pytest.raises(OffsetResetError, match="refused"):
                apply_reset(settings.kafka, group, moves, force=True)
            assert committed(kafka_bootstrap, group, topic) == {0: 10, 1: 10}, "nothing moved"
        finally:
            member.close()

        by_time = plan_reset(settings.kafka, group, [topic], Target(timestamp_ms=middle))
        assert {m.target for m in by_time} == {5}, "the first record at or after the time"
        apply_reset(settings.kafka, group, by_time)
        assert committed(kafka_bootstrap, group, topic) == {0: 5, 1: 5}
        clamped = plan_reset(settings.kafka, group, [topic], Target(offset=99))
        latest = plan_reset(settings.kafka, group, [topic], Target(latest=True))
        # Clamped to the partition's end as the broker reports it (tansu under-reports it:
        # FACTS.md), never past it.
        assert [m.target for m in clamped] == [m.target for m in latest]
        assert all(5 <= m.target <= 10 for m in clamped)
        with pytest.raises(OffsetResetError, match="no such topic"):
            plan_reset(settings.kafka, group, [topic + ".missing"], Target(earliest=True))

    async def test_cli_dry_run_changes_nothing(
        self,
        fresh_anvil: AnvilService,
        config: Callable[[World], dict[str, Any]],
        kafka_bootstrap: str,
        tmp_path: Path,
    ) -> None:
        world = await make_world(fresh_anvil.rpc_url, mint_count=4)
        await world.rpc("anvil_mine", [3])
        raw = config(world)
        settings: Settings = settings_from_mapping(raw, {})
        topics = settings.kafka.topics
        producer = AsyncProducer(settings.kafka)
        await producer.start()
        try:
            head = await world.block_number()
            await replay_range(settings, "local", 0, head - 2, producer=producer)
            await ensure_topics(settings.kafka, {topics.oracle_observations: 1})
        finally:
            await producer.close()
        group = settings.regenerator.planner_group
        for args in (("--to-earliest", "--dry-run"), ("--to-latest", "--yes")):
            done = cli(raw, tmp_path, "replay", "--consumer", "regenerator", *args)
            assert done.returncode == 0, done.stderr
            assert f"consumer group {group!r}" in done.stdout
        assert (
            "dry run: nothing changed"
            in cli(
                raw, tmp_path, "replay", "--consumer", "regenerator", "--to-earliest", "--dry-run"
            ).stdout
        )
        latest = plan_reset(settings.kafka, group, [topics.chain_events], Target(latest=True))
        assert committed(kafka_bootstrap, group, topics.chain_events) == {
            m.partition: m.target for m in latest
        }, "--to-latest moved the group to the end"
        assert sum(m.target for m in latest) > 0
        bad = cli(raw, tmp_path, "replay", "--consumer", "regenerator", "--to-timestamp", "noon")
        assert bad.returncode != 0
        assert "--to-timestamp" in bad.stderr
