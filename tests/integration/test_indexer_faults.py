"""The indexer under faults: a misbehaving provider, and kill -9 at any moment."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from dnft.devservices import AnvilService
from dnft.devservices.ports import free_port
from dnft.kafka import AsyncProducer
from dnft.migrations import apply_migrations
from indexer import NetworkIndexer
from tests.support.chain import (
    apply_stream,
    as_comparable,
    canonical_events,
    indexer_config,
    indexer_settings,
    make_world,
    read_topic,
    wait_until,
)
from tests.support.daemon import DaemonProcess
from tests.support.rpcproxy import Faults, RpcProxy


class TestProviderFaults:
    """Range refusals, 429, 500, garbage, dropped connections and a dead first URL."""

    async def test_indexer_adapts_and_loses_nothing(
        self,
        fresh_anvil: AnvilService,
        kafka_bootstrap: str,
        fresh_db_dsn: str,
        unique_topic: Callable[[str], str],
    ) -> None:
        await apply_migrations(fresh_db_dsn)
        world = await make_world(fresh_anvil.rpc_url, mint_count=1500)
        for i in range(1, 31):
            await world.feed(i, amount=i)
        await world.rpc("anvil_mine", [hex(300)])  # enough blocks for ~50 range requests
        faults = Faults(
            max_log_range=7,
            p_429=0.08,
            p_500=0.08,
            p_garbage=0.08,
            p_drop=0.05,
            p_delay=0.05,
            seed=11,
        )
        proxy = RpcProxy(fresh_anvil.rpc_url, faults)
        await proxy.start()
        settings = indexer_settings(
            rpc_urls=[f"http://127.0.0.1:{free_port()}", proxy.url],
            ws_url=None,
            chain_id=world.chain_id,
            address=world.address,
            bootstrap=kafka_bootstrap,
            dsn=fresh_db_dsn,
            topic=unique_topic("chain"),
            max_block_range=200,
            request_timeout_s=2,
        )
        producer = AsyncProducer(settings.kafka)
        await producer.start()
        stopping = asyncio.Event()
        indexer = NetworkIndexer(settings, "local", producer)
        task = asyncio.create_task(indexer.run(stopping))
        try:
            head = await world.block_number()
            await wait_until(lambda: indexer.indexed_block >= head, 90, "backfill under faults")
            for i in range(1, 11):  # and realtime under the same faults
                await world.feed(i, amount=100 + i)
            head = await world.block_number()
            await wait_until(lambda: indexer.indexed_block >= head, 60, "realtime under faults")
        finally:
            stopping.set()
            await asyncio.wait_for(task, 20)
            await producer.close()
            await proxy.stop()
        expected = await canonical_events(world, head)
        messages = read_topic(kafka_bootstrap, settings.kafka.topics.chain_events)
        assert as_comparable(apply_stream(messages)) == expected
        ids = [m["event_id"] for m in messages]
        assert len(ids) == len(set(ids))
        for kind in ("range", "429", "500", "garbage", "drop"):
            assert faults.counts.get(kind, 0) > 0, f"fault {kind} was never injected"


class TestRealtimeRangeRefusal:
    """Realtime catching up a gap wider than the provider's log range splits the range."""

    async def test_gap_wider_than_provider_range(
        self,
        fresh_anvil: AnvilService,
        kafka_bootstrap: str,
        db: str,
        unique_topic: Callable[[str], str],
    ) -> None:
        world = await make_world(fresh_anvil.rpc_url, mint_count=3)
        proxy = RpcProxy(fresh_anvil.rpc_url, Faults(max_log_range=3, seed=1))
        await proxy.start()
        settings = indexer_settings(
            rpc_urls=[proxy.url],
            ws_url=None,
            chain_id=world.chain_id,
            address=world.address,
            bootstrap=kafka_bootstrap,
            dsn=db,
            topic=unique_topic("chain"),
            confirmations={"depth": 0},
        )
        producer = AsyncProducer(settings.kafka)
        await producer.start()
        stopping = asyncio.Event()
        indexer = NetworkIndexer(settings, "local", producer)
        task = asyncio.create_task(indexer.run(stopping))
        try:
            head = await world.block_number()
            await wait_until(lambda: indexer.state == "realtime", 30, "realtime")
            await wait_until(lambda: indexer.indexed_block >= head, 30, "caught up")
            await world.feed(1, amount=5)
            await world.rpc("anvil_mine", [hex(20)])  # one step of 21 blocks; the node takes 3
            head = await world.block_number()
            await wait_until(lambda: indexer.indexed_block >= head, 30, "the gap")
        finally:
            stopping.set()
            await asyncio.wait_for(task, 20)
            await producer.close()
            await proxy.stop()
        assert proxy.faults.counts.get("range", 0) > 0, "the provider refused the wide range"
        messages = read_topic(kafka_bootstrap, settings.kafka.topics.chain_events)
        assert as_comparable(apply_stream(messages)) == await canonical_events(world, head)


async def metric_reaches(
    daemon: DaemonProcess, name: str, predicate: Callable[[float], bool], timeout_s: float
) -> float:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        assert daemon.proc is not None
        assert daemon.proc.poll() is None, daemon.log.read_text()[-3000:]
        value = (await daemon.metrics()).get(name)
        if value is not None and predicate(value):
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} did not reach the expected value in {timeout_s}s")


class TestKillNine:
    """kill -9 five times mid-backfill and five times mid-realtime: nothing missing."""

    async def test_nothing_lost_across_kills(
        self,
        fresh_anvil: AnvilService,
        kafka_bootstrap: str,
        fresh_db_dsn: str,
        unique_topic: Callable[[str], str],
        tmp_path: Path,
    ) -> None:
        await apply_migrations(fresh_db_dsn)
        world = await make_world(fresh_anvil.rpc_url)
        for _ in range(12):  # events spread over ~4,800 blocks: a backfill of many chunks
            await world.rpc("anvil_mine", [hex(400)])
            await world.signer.transact(
                world.w3,
                {
                    "to": world.address,
                    "data": world.collection.encode_abi("mintBatch", [world.signer.address, 300]),
                },
            )
        for i in range(1, 21):
            await world.feed(i)
        port = free_port()
        config: dict[str, Any] = indexer_config(
            rpc_urls=[fresh_anvil.rpc_url],
            ws_url=fresh_anvil.ws_url,
            chain_id=world.chain_id,
            address=world.address,
            bootstrap=kafka_bootstrap,
            dsn=fresh_db_dsn,
            topic=unique_topic("chain"),
            http_port=port,
            max_block_range=1,
            max_in_flight=2,
            backfill_worker_after_s=0,  # the backfill runs in the worker process: kill it too
        )
        path = tmp_path / "dnft.yaml"
        path.write_text(yaml.safe_dump(config))
        daemon = DaemonProcess("indexer", path, port, tmp_path / "indexer.log")
        try:
            rng = random.Random(5)
            target = await world.block_number()

            last = -1.0
            for _ in range(5):  # mid-backfill: kill as soon as progress shows, before the end
                daemon.start()
                last = await metric_reaches(
                    daemon, "dnft_indexer_indexed_block", lambda v, floor=last: v > floor, 60
                )
                await asyncio.sleep(rng.uniform(0, 0.2))
                daemon.kill9()
                assert last < target - 2, "backfill finished before the kill: test too small"

            stop = asyncio.Event()

            async def traffic() -> None:
                n = 0
                while not stop.is_set():
                    await world.feed(1 + n % 20, amount=n + 1)
                    n += 1

            traffic_task = asyncio.create_task(traffic())
            try:
                for _ in range(5):  # mid-realtime, with blocks arriving all the time
                    daemon.start()
                    await metric_reaches(
                        daemon, "dnft_indexer_following_head", lambda v: v == 1, 90
                    )
                    await asyncio.sleep(rng.uniform(0.1, 0.8))
                    daemon.kill9()
            finally:
                stop.set()
                await traffic_task

            daemon.start()
            head = await world.block_number()
            await metric_reaches(daemon, "dnft_indexer_indexed_block", lambda v: v >= head, 90)
            assert daemon.terminate() == 0, "SIGTERM shuts down cleanly"

        finally:
            daemon.kill9()

        expected = await canonical_events(world, head)
        messages = read_topic(kafka_bootstrap, config["kafka"]["topics"]["chain_events"])
        state = apply_stream(messages)
        assert as_comparable(state) == expected, "every on-chain event is in Kafka"
        # Repeats are allowed after a crash, but each carries the same id and content.
        seen: dict[str, Any] = {}
        for m in messages:
            if not m["removed"]:
                body = {k: v for k, v in m.items() if not k.startswith("_")}
                assert seen.setdefault(m["event_id"], body) == body


class TestHotStandby:
    """Two replicas: one leads, the other waits; kill -9 the leader and the standby takes over."""

    async def test_standby_takes_over(
        self,
        fresh_anvil: AnvilService,
        kafka_bootstrap: str,
        fresh_db_dsn: str,
        unique_topic: Callable[[str], str],
        tmp_path: Path,
    ) -> None:
        await apply_migrations(fresh_db_dsn)
        world = await make_world(fresh_anvil.rpc_url, mint_count=10)
        topic = unique_topic("chain")
        daemons = []
        for name in ("a", "b"):
            port = free_port()
            config = indexer_config(
                rpc_urls=[fresh_anvil.rpc_url],
                ws_url=fresh_anvil.ws_url,
                chain_id=world.chain_id,
                address=world.address,
                bootstrap=kafka_bootstrap,
                dsn=fresh_db_dsn,
                topic=topic,
                http_port=port,
            )
            path = tmp_path / f"{name}.yaml"
            path.write_text(yaml.safe_dump(config))
            daemons.append(DaemonProcess("indexer", path, port, tmp_path / f"{name}.log"))
        leader, standby = daemons
        try:
            leader.start()
            await metric_reaches(leader, "dnft_indexer_following_head", lambda v: v == 1, 60)
            standby.start()
            await metric_reaches(standby, "dnft_daemon_leader", lambda v: v == 0, 30)
            for i in range(1, 6):
                await world.feed(i)
            await asyncio.sleep(1.0)
            assert (await standby.metrics()).get("dnft_indexer_following_head") != 1
            leader.kill9()
            for i in range(1, 6):  # blocks while nobody leads, then after the take-over
                await world.feed(i, amount=7)
            await metric_reaches(standby, "dnft_indexer_following_head", lambda v: v == 1, 30)
            head = await world.block_number()
            await metric_reaches(standby, "dnft_indexer_indexed_block", lambda v: v >= head, 30)
        finally:
            for daemon in daemons:
                daemon.kill9()
        expected = await canonical_events(world, head)
        assert as_comparable(apply_stream(read_topic(kafka_bootstrap, topic))) == expected
