"""The indexer against real anvil, tansu and Postgres: backfill, realtime, reorgs, errors."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
import structlog.testing

from dnft import metrics
from dnft.config import Settings, settings_from_mapping
from dnft.devservices import AnvilService
from dnft.devservices.ports import free_port
from dnft.errors import ConfigError
from dnft.kafka import AsyncProducer
from indexer import NetworkIndexer, ReorgBeyondWindowError
from tests.support.chain import (
    Deployed,
    Deployment,
    canonical_events,
    chain_stream,
    final_events,
    make_world,
)
from tests.support.cli import write_config
from tests.support.daemon import DaemonProcess
from tests.support.indexer import IndexerConfigFor, RunningIndexer, caught_up
from tests.support.wait import wait_until


@pytest.fixture
def settings_for(indexer_config_for: IndexerConfigFor) -> Callable[..., Settings]:
    """Settings indexing a world into this test's topic (``network`` overrides its keys)."""

    def make(world: Deployed, **network: Any) -> Settings:
        return settings_from_mapping(indexer_config_for(world, **network), {})

    return make


class TestBackfill:
    """A backfill of thousands of events equals an independent eth_getLogs read."""

    @pytest.mark.parametrize("where", ["in-process", "worker"])
    async def test_backfill_matches_node(
        self,
        fresh_anvil: AnvilService,
        settings_for: Callable[..., Settings],
        where: str,
    ) -> None:
        world = await make_world(fresh_anvil.rpc_url, mint_count=3000)
        for i in range(1, 41):
            await world.feed(i, amount=i)
            await world.set_trait(i, "mood", f"m{i} <script>")
        await world.rpc("anvil_mine", [5])
        # 0: hand the backfill to the worker process after its first chunk; 1 hour: never.
        after_s = 0.0 if where == "worker" else 3600.0
        settings = settings_for(world, backfill_worker_after_s=after_s)
        with structlog.testing.capture_logs() as logs:
            async with RunningIndexer(settings) as indexer:
                head = await caught_up(indexer, world)
        handed_over = any(e["event"] == "backfill continues in a worker process" for e in logs)
        assert handed_over == (where == "worker")
        expected = await canonical_events(world, head)
        messages = chain_stream(settings)
        counts: dict[str, int] = {}
        for v in expected.values():
            counts[v["event"]] = counts.get(v["event"], 0) + 1
        assert (counts["Transfer"], counts["Fed"], counts["TraitSet"]) == (3000, 40, 40)
        assert final_events(messages) == expected
        ids = [m["event_id"] for m in messages]
        assert len(ids) == len(set(ids)), "no duplicate event ids without a restart"
        assert all(isinstance(m["block_timestamp"], int) for m in messages)
        # Per-token order: a token's events share one partition, in chain order.
        by_token: dict[str, list[int]] = {}
        for m in messages:
            if m["token_id"] is not None:
                assert m["_key"] == f"{world.chain_id}:{world.address.lower()}:{m['token_id']}"
                by_token.setdefault(m["token_id"], []).append(m["_partition"])
        assert all(len(set(parts)) == 1 for parts in by_token.values())


class TestRealtime:
    """The hand-over from backfill to realtime under continuous traffic: no gap, no duplicate."""

    async def test_handover_under_traffic(
        self, fresh_anvil: AnvilService, settings_for: Callable[..., Settings]
    ) -> None:
        world = await make_world(fresh_anvil.rpc_url, mint_count=50)
        for i in range(1, 30):
            await world.feed(i)
        settings = settings_for(world, ws_url=fresh_anvil.ws_url)
        stop_traffic = asyncio.Event()

        async def traffic() -> int:
            sent = 0
            while not stop_traffic.is_set():
                await world.feed(1 + sent % 50, amount=sent + 1)
                sent += 1
            return sent

        traffic_task = asyncio.create_task(traffic())
        async with RunningIndexer(settings) as indexer:
            await wait_until(lambda: indexer.state == "realtime", 20, "realtime")
            await asyncio.sleep(2.0)
            stop_traffic.set()
            sent = await traffic_task
            head = await caught_up(indexer, world)
            latencies = list(indexer.head_latencies)
        assert sent > 20
        expected = await canonical_events(world, head)
        messages = chain_stream(settings)
        ids = [m["event_id"] for m in messages]
        assert len(ids) == len(set(ids)), "a duplicate id crossed the hand-over"
        assert final_events(messages) == expected
        assert latencies, "realtime blocks were measured"

    async def test_interval_mining(
        self, tmp_path: Path, settings_for: Callable[..., Settings]
    ) -> None:
        """anvil --block-time: several transactions per block, empty blocks in between."""
        anvil = AnvilService(tmp_path / "interval", block_time=0.5)
        anvil.start()
        try:
            world = await make_world(anvil.rpc_url, mint_count=10)
            settings = settings_for(world, ws_url=anvil.ws_url)
            async with RunningIndexer(settings) as indexer:
                await wait_until(lambda: indexer.state == "realtime", 20, "realtime")
                for i in range(30):
                    await world.send_feed(1 + i % 10, amount=i + 1)
                    await asyncio.sleep(0.05)
                await world.rpc("anvil_mine", [1])
                await asyncio.sleep(1.5)  # let the last interval block be mined
                head = await caught_up(indexer, world)
            expected = await canonical_events(world, head)
            messages = chain_stream(settings)
            fed = [e for e in expected.values() if e["event"] == "Fed"]
            assert len(fed) == 30
            assert final_events(messages) == expected
        finally:
            anvil.stop()


class TestReorgs:
    """Reorgs of depth 1 to 5 while streaming: applying retractions yields the canonical set."""

    async def test_reorgs_depth_1_to_5(
        self, fresh_anvil: AnvilService, settings_for: Callable[..., Settings]
    ) -> None:
        world = await make_world(fresh_anvil.rpc_url, mint_count=20)
        settings = settings_for(world, confirmations={"depth": 8}, reorg_window=16)
        rng = random.Random(7)
        async with RunningIndexer(settings) as indexer:
            await caught_up(indexer, world)
            for depth in (1, 2, 3, 4, 5, 3, 1):  # the window (16) and confirmations (8) cover 5
                for _ in range(depth + 2):
                    await world.feed(rng.randint(1, 20), amount=rng.randint(1, 9))
                await caught_up(indexer, world)
                replacement = [
                    [
                        {
                            "from": world.signer.address,
                            "to": world.address,
                            "value": hex(1000 + depth),
                            "data": world.collection.encode_abi("feed", [rng.randint(1, 20)]),
                        },
                        0,
                    ]
                ]
                await world.rpc("anvil_reorg", [depth, replacement])
                world.signer._nonce = None  # the reorg changed the account's nonce
                await world.feed(rng.randint(1, 20))  # a new head past the reorged ones
                head = await caught_up(indexer, world)
            depths = list(indexer.reorg_depths)
        expected = await canonical_events(world, head)
        messages = chain_stream(settings)
        retractions = [m for m in messages if m["removed"]]
        assert depths == [1, 2, 3, 4, 5, 3, 1], "each reorg detected once, at its true depth"
        assert retractions, "orphaned events were retracted"
        assert final_events(messages) == expected


class TestErrors:
    """Bad configuration and unreachable nodes fail clearly."""

    async def test_unknown_event_name(
        self, fresh_anvil: AnvilService, settings_for: Callable[..., Settings]
    ) -> None:
        world = await make_world(fresh_anvil.rpc_url)
        base = settings_for(world)
        contract = base.contracts[0].model_copy(update={"include_events": ["Transfer", "Fedd"]})
        settings = base.model_copy(update={"contracts": [contract]})
        with pytest.raises(ConfigError, match=r"Fedd.*not in the ABI") as info:
            NetworkIndexer(settings, "local", AsyncProducer(settings.kafka))
        assert info.value.key == "contracts[collection].include_events"

    async def test_bad_abi_file(
        self, fresh_anvil: AnvilService, settings_for: Callable[..., Settings], tmp_path: Path
    ) -> None:
        world = await make_world(fresh_anvil.rpc_url)
        bad = tmp_path / "abi.json"
        bad.write_text("{not json")
        base = settings_for(world)
        contract = base.contracts[0].model_copy(update={"abi": bad})
        settings = base.model_copy(update={"contracts": [contract]})
        with pytest.raises(ConfigError, match="is not JSON") as info:
            NetworkIndexer(settings, "local", AsyncProducer(settings.kafka))
        assert info.value.key == "contracts[collection].abi"

    async def test_unreachable_rpc(self, settings_for: Callable[..., Settings]) -> None:
        nowhere = Deployment("http://127.0.0.1:9", 31337, "0x" + "11" * 20)
        settings = settings_for(nowhere, request_timeout_s=1)
        producer = AsyncProducer(settings.kafka)
        await producer.start()
        try:
            indexer = NetworkIndexer(settings, "local", producer)
            with pytest.raises(Exception, match=r"127\.0\.0\.1:9") as info:
                await asyncio.wait_for(indexer.run(asyncio.Event()), 60)
            assert "eth_blockNumber" in str(info.value)
        finally:
            await producer.close()


class TestReorgBeyondWindow:
    """A reorg deeper than the window stops the indexer loudly and sets the alert metric."""

    async def test_deep_reorg_stops_with_metric(
        self, fresh_anvil: AnvilService, settings_for: Callable[..., Settings]
    ) -> None:
        world = await make_world(fresh_anvil.rpc_url, mint_count=5)
        for i in range(1, 9):
            await world.feed(1 + i % 5)
        settings = settings_for(world, confirmations={"depth": 2}, reorg_window=3)
        producer = AsyncProducer(settings.kafka)
        await producer.start()
        indexer = NetworkIndexer(settings, "local", producer)
        task = asyncio.create_task(indexer.run(asyncio.Event()))
        try:
            await caught_up(indexer, world)
            await world.rpc("anvil_reorg", [6, []])  # deeper than window (3) + depth (2)
            await world.rpc("anvil_mine", [1])
            with pytest.raises(ReorgBeyondWindowError, match="raise the network's reorg_window"):
                await asyncio.wait_for(task, 20)
        finally:
            await producer.close()
        gauge = metrics.indexer_reorg_beyond_window.labels("local")._value.get()
        assert gauge == 1

    async def test_daemon_stays_up_not_ready(
        self, fresh_anvil: AnvilService, indexer_config_for: IndexerConfigFor, tmp_path: Path
    ) -> None:
        """`dnft indexer` halts the network but stays up, not ready, with the metric at 1:
        Prometheus keeps scraping it instead of seeing a crash loop."""
        world = await make_world(fresh_anvil.rpc_url, mint_count=5)
        for i in range(1, 9):
            await world.feed(1 + i % 5)
        port = free_port()
        raw = indexer_config_for(world, http_port=port, reorg_window=3)
        config = write_config(tmp_path / "dnft.yaml", raw)
        daemon = DaemonProcess("indexer", config, port, tmp_path / "indexer.log")
        daemon.start()
        try:
            head = await world.block_number()
            await daemon.metric_reaches("dnft_indexer_indexed_block", lambda v: v >= head - 2, 30)
            await world.rpc("anvil_reorg", [6, []])  # deeper than window (3) + depth (2)
            await world.rpc("anvil_mine", [1])
            await daemon.metric_reaches("dnft_indexer_reorg_beyond_window", lambda v: v == 1, 30)
            await asyncio.sleep(1)
            assert daemon.alive(), "the process stays up for Prometheus to scrape"
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{port}/readyz") as ready,
            ):
                assert ready.status == 503
                assert "reorg beyond window" in await ready.text()
            assert daemon.terminate() == 0
        finally:
            daemon.kill9()
