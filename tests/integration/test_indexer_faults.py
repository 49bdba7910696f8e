"""The indexer under faults: a misbehaving provider, and kill -9 at any moment."""

from __future__ import annotations

import asyncio
import operator
import random
from functools import partial
from pathlib import Path
from typing import Any

from dnft.config import settings_from_mapping
from dnft.devservices import AnvilService
from dnft.devservices.ports import free_port
from tests.support.chain import canonical_events, chain_stream, final_events, make_world
from tests.support.cli import write_config
from tests.support.daemon import DaemonProcess, start_indexer_pair
from tests.support.indexer import IndexerConfigFor, RunningIndexer, caught_up
from tests.support.rpcproxy import Faults, RpcProxy
from tests.support.wait import wait_until


class TestProviderFaults:
    """Range refusals, 429, 500, garbage, dropped connections and a dead first URL."""

    async def test_indexer_adapts_and_loses_nothing(
        self, fresh_anvil: AnvilService, indexer_config_for: IndexerConfigFor
    ) -> None:
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
        async with RpcProxy(fresh_anvil.rpc_url, faults) as proxy:
            dead = f"http://127.0.0.1:{free_port()}"
            raw = indexer_config_for(
                world, rpc_urls=[dead, proxy.url], max_block_range=200, request_timeout_s=2
            )
            settings = settings_from_mapping(raw, {})
            async with RunningIndexer(settings, stop_timeout_s=20) as indexer:
                await caught_up(indexer, world, 90)  # a backfill under faults
                for i in range(1, 11):  # and realtime under the same faults
                    await world.feed(i, amount=100 + i)
                head = await caught_up(indexer, world, 60)
        expected = await canonical_events(world, head)
        messages = chain_stream(settings)
        assert final_events(messages) == expected
        ids = [m["event_id"] for m in messages]
        assert len(ids) == len(set(ids))
        for kind in ("range", "429", "500", "garbage", "drop"):
            assert faults.counts.get(kind, 0) > 0, f"fault {kind} was never injected"


class TestRealtimeRangeRefusal:
    """Realtime catching up a gap wider than the provider's log range splits the range."""

    async def test_gap_wider_than_provider_range(
        self, fresh_anvil: AnvilService, indexer_config_for: IndexerConfigFor
    ) -> None:
        world = await make_world(fresh_anvil.rpc_url, mint_count=3)
        async with RpcProxy(fresh_anvil.rpc_url, Faults(max_log_range=3, seed=1)) as proxy:
            raw = indexer_config_for(world, rpc_urls=[proxy.url], confirmations={"depth": 0})
            settings = settings_from_mapping(raw, {})
            async with RunningIndexer(settings, stop_timeout_s=20) as indexer:
                await wait_until(lambda: indexer.state == "realtime", 30, "realtime")
                await caught_up(indexer, world)
                await world.feed(1, amount=5)
                await world.rpc("anvil_mine", [hex(20)])  # one step of 21 blocks; the node takes 3
                head = await caught_up(indexer, world)  # the gap
        assert proxy.faults.counts.get("range", 0) > 0, "the provider refused the wide range"
        assert final_events(chain_stream(settings)) == await canonical_events(world, head)


class TestKillNine:
    """kill -9 five times mid-backfill and five times mid-realtime: nothing missing."""

    async def test_nothing_lost_across_kills(
        self, fresh_anvil: AnvilService, indexer_config_for: IndexerConfigFor, tmp_path: Path
    ) -> None:
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
        raw = indexer_config_for(
            world,
            ws_url=fresh_anvil.ws_url,
            http_port=port,
            max_block_range=1,
            max_in_flight=2,
            backfill_worker_after_s=0,  # the backfill runs in the worker process: kill it too
        )
        config = write_config(tmp_path / "dnft.yaml", raw)
        daemon = DaemonProcess("indexer", config, port, tmp_path / "indexer.log")
        try:
            rng = random.Random(5)
            target = await world.block_number()

            last = -1.0
            for _ in range(5):  # mid-backfill: kill as soon as progress shows, before the end
                daemon.start()
                # Progress past the previous kill's block: a predicate "v > last".
                last = await daemon.metric_reaches(
                    "dnft_indexer_indexed_block", partial(operator.lt, last), 60
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
                    await daemon.metric_reaches("dnft_indexer_following_head", lambda v: v == 1, 90)
                    await asyncio.sleep(rng.uniform(0.1, 0.8))
                    daemon.kill9()
            finally:
                stop.set()
                await traffic_task

            daemon.start()
            head = await world.block_number()
            await daemon.metric_reaches("dnft_indexer_indexed_block", lambda v: v >= head, 90)
            assert daemon.terminate() == 0, "SIGTERM shuts down cleanly"

        finally:
            daemon.kill9()

        expected = await canonical_events(world, head)
        messages = chain_stream(settings_from_mapping(raw, {}))
        assert final_events(messages) == expected, "every on-chain event is in Kafka"
        # Repeats are allowed after a crash, but each carries the same id and content, all
        # but its finality: published at the head, republished after the restart once final.
        seen: dict[str, Any] = {}
        for m in messages:
            if not m["removed"]:
                body = {k: v for k, v in m.items() if not k.startswith("_") and k != "finality"}
                assert seen.setdefault(m["event_id"], body) == body


class TestHotStandby:
    """Two replicas: one leads, the other waits; kill -9 the leader and the standby takes over."""

    async def test_standby_takes_over(
        self, fresh_anvil: AnvilService, indexer_config_for: IndexerConfigFor, tmp_path: Path
    ) -> None:
        world = await make_world(fresh_anvil.rpc_url, mint_count=10)
        daemons = []
        for name in ("a", "b"):  # one topic: the fixture gives this test a single one
            port = free_port()
            raw = indexer_config_for(world, ws_url=fresh_anvil.ws_url, http_port=port)
            config = write_config(tmp_path / f"{name}.yaml", raw)
            daemons.append(DaemonProcess("indexer", config, port, tmp_path / f"{name}.log"))
        leader, standby = daemons
        try:
            await start_indexer_pair(leader, standby)
            for i in range(1, 6):
                await world.feed(i)
            await asyncio.sleep(1.0)
            assert (await standby.metrics()).get("dnft_indexer_following_head") != 1
            leader.kill9()
            for i in range(1, 6):  # blocks while nobody leads, then after the take-over
                await world.feed(i, amount=7)
            await standby.metric_reaches("dnft_indexer_following_head", lambda v: v == 1, 30)
            head = await world.block_number()
            await standby.metric_reaches("dnft_indexer_indexed_block", lambda v: v >= head, 30)
        finally:
            for daemon in daemons:
                daemon.kill9()
        expected = await canonical_events(world, head)
        assert final_events(chain_stream(settings_from_mapping(raw, {}))) == expected
