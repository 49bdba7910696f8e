"""The chaos harness: the whole pipeline on services of its own, demo-like traffic
(``traffic.py``), faults, and the reads that tell whether anything was lost or repeated
(``measures.py``).

Services: anvil (a block every 0.5 s, history pruned to 256 blocks), tansu storing in S3 on a
local moto (so a broker restart keeps topics and offsets) behind a Kafka-aware proxy (a broker
restart drains it first: ``tests/support/kafkaproxy.py`` says why) and Postgres. Every daemon
runs as a process of its own (`dnft indexer`, `oracle`, `regenerator`, `api`, `pusher`) behind
a small supervisor that restarts one that exits, as Kubernetes would. The daemons reach the chain
through a fault-injecting JSON-RPC proxy; the traffic, the canary and the reorgs go straight
to anvil. A price server plays the oracle's source and can flap, lie (spike) or go stale.

Recovery is measured with a canary: a `Fed` of token 1 sent after a fault ends, timed until
its new version is confirmed on chain by the pusher (event -> Kafka -> state -> render ->
metadata -> ERC-4906 transaction -> confirmations).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from demo.config import CONTRACT, NETWORK, Endpoints, demo_collection, demo_settings
from demo.world import grant_pusher
from dnft.contracts import DevSigner, anvil_dev_key, at
from dnft.devservices import AnvilService, PostgresService, TansuService
from dnft.devservices.ports import free_port
from dnft.migrations import apply_migrations
from tests.chaos.measures import Measures, connect
from tests.chaos.price_source import PriceSource
from tests.chaos.report import ChaosReport
from tests.chaos.traffic import Traffic
from tests.support.daemon import DaemonProcess
from tests.support.kafkaproxy import KafkaProxy
from tests.support.rpcproxy import Faults, RpcProxy

DAEMONS = ("indexer", "oracle", "regenerator", "api", "pusher")
TOKENS = 12
HOLDERS = 3
CANARY_ACCOUNT = 8  # not a holder (0..HOLDERS-1), not the pusher (9)
BLOCK_TIME_S = 0.5
# Deeper than the deepest reorg of the storm (8): blocks past it are final for the indexer and
# the pusher.
REORG_SAFE_DEPTH = 10


def long_run() -> bool:
    """`make chaos` sets CHAOS_LONG=1: ten kill rounds, longer faults, a longer storm."""
    return os.environ.get("CHAOS_LONG") == "1"


# --- daemons ------------------------------------------------------------------------------


class Supervised(DaemonProcess):
    """A daemon restarted when it exits, as a Kubernetes Deployment would (after 1 s)."""

    def __init__(self, name: str, config: Path, port: int, log: Path) -> None:
        super().__init__(name, config, port, log)
        self.name = name
        self.kills = 0
        self.exits: list[int] = []  # exit codes of exits it was not asked for


# --- the world ------------------------------------------------------------------------------


class ChaosWorld(Traffic, Measures):
    """Start with :meth:`start`, stop with :meth:`stop` (everything, whatever failed)."""

    def __init__(self, root: Path, seed: int) -> None:
        self.root = root
        self.seed = seed
        self.rng = random.Random(seed)
        self.anvil = AnvilService(root, block_time=BLOCK_TIME_S)
        self.kafka_proxy = KafkaProxy(upstream_port=free_port())
        self.tansu = TansuService(
            root,
            port=self.kafka_proxy.upstream_port,
            durable=True,
            advertise=f"127.0.0.1:{self.kafka_proxy.port}",
        )
        self.postgres = PostgresService(root)
        self.source = PriceSource(seed)
        self.proxy: RpcProxy | None = None
        self.daemons: dict[str, Supervised] = {}
        self.deploy: dict[str, Any] = {}
        self.config_file = root / "dnft.yaml"
        self.settings: dict[str, Any] = {}
        self.w3: Any = None
        self.collection: Any = None
        self.owners: dict[int, int] = {}
        self.signers: dict[int, DevSigner] = {}
        self.canary_signer: DevSigner | None = None
        self.traffic_stats: Counter[str] = Counter()
        self.report = ChaosReport(seed)
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.traffic_paused = asyncio.Event()

    # -- start / stop ------------------------------------------------------------------------

    async def start(self) -> None:
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        for service in (self.anvil, self.tansu, self.postgres):
            await asyncio.to_thread(service.start)
        await apply_migrations(self.postgres.dsn)
        from web3 import AsyncHTTPProvider, AsyncWeb3

        from dnft.sample import deploy_sample

        self.deploy = await deploy_sample(self.anvil.rpc_url, mint=TOKENS, holders=HOLDERS)
        address = self.deploy["contracts"]["DynamicCollection"]
        api_port = free_port()
        key_file = await grant_pusher(self.anvil.rpc_url, address, api_port, self.root / "key")
        self.w3 = AsyncWeb3(AsyncHTTPProvider(self.anvil.rpc_url))
        self.collection = at(self.w3, "DynamicCollection", address)
        index = {h.lower(): i for i, h in enumerate(self.deploy["holders"])}
        self.owners = {
            t: index[m["holder"].lower()]
            for m in self.deploy["mints"]
            for t in range(int(m["first"]), int(m["last"]) + 1)
        }
        for i in range(HOLDERS):
            self.signers[i] = DevSigner(await asyncio.to_thread(anvil_dev_key, i))
        self.canary_signer = DevSigner(await asyncio.to_thread(anvil_dev_key, CANARY_ACCOUNT))

        self.proxy = RpcProxy(self.anvil.rpc_url, Faults(seed=self.seed))
        await self.proxy.start()
        await self.source.start()
        endpoints = Endpoints(
            rpc_url=self.proxy.url,
            ws_url="",
            chain_id=int(self.deploy["chain_id"]),
            kafka=self.tansu.bootstrap,
            dsn=self.postgres.dsn,
            feed_url=self.source.url,
            api_port=api_port,
            health_port=0,
        )
        collection_file = self.root / "collection.yaml"
        collection = demo_collection(image_size=64)
        collection_file.write_text(yaml.safe_dump(collection, sort_keys=False))
        raw = demo_settings(
            endpoints,
            collection_file=collection_file,
            address=address,
            start_block=int(self.deploy["deploy_block"]),
            blobs=self.root / "blobs",
            signer_key_file=key_file,
            feed_interval_s=0.5,
        )
        network = raw["networks"][0]
        network.pop("ws_url")  # poll through the proxy: every chain read can meet a fault
        network["request_timeout_s"] = 5
        # Events are published at the head and retracted if a reorg orphans them, down to the
        # confirmation depth; a deeper reorg halts the network (it would break finality). The
        # storm reorgs up to 8 blocks deep: an operator expecting that sets a depth above it.
        network["confirmations"] = {"depth": REORG_SAFE_DEPTH}
        raw["feeds"][0].update(
            url=self.source.url,
            timestamp_path="ts",
            max_age_s=30,
            max_change="0.5",  # a move over 50% waits for a second reading to confirm it
            timeout_s=2,
        )
        raw["pusher"].update(
            confirmations=REORG_SAFE_DEPTH,
            window_s=1,
            max_transactions_per_minute=600,
            poll_interval_s=0.25,
        )
        raw["log_level"] = "info"
        self.settings = raw
        for name in DAEMONS:
            port = free_port()
            config = self.root / f"{name}.yaml"
            config.write_text(yaml.safe_dump({**raw, "http": {"port": port}}, sort_keys=False))
            self.daemons[name] = Supervised(name, config, port, self.root / "logs" / f"{name}.log")
        # The audit reads the chain itself, not through the faulty proxy.
        direct = {**raw, "networks": [{**network, "rpc_urls": [self.anvil.rpc_url]}]}
        self.config_file.write_text(yaml.safe_dump(direct, sort_keys=False))
        for daemon in self.daemons.values():
            daemon.start()
        self._tasks.append(asyncio.create_task(self._supervise()))
        await self.wait_ready(120)
        self._tasks.append(asyncio.create_task(self._traffic()))
        self._tasks.append(asyncio.create_task(self._walk()))

    async def stop(self) -> None:
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        for daemon in self.daemons.values():
            if daemon.alive():
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(daemon.terminate)
            daemon.kill9()
        if self.proxy is not None:
            await self.proxy.stop()
        await self.source.stop()
        if self.w3 is not None:
            await self.w3.provider.disconnect()
        for service in (self.anvil, self.tansu):
            with contextlib.suppress(Exception):
                await asyncio.to_thread(service.stop)
        self.kafka_proxy.close()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.postgres.destroy)

    async def wait_ready(self, timeout_s: float) -> float:
        """Seconds until every daemon answers /readyz 200; raises AssertionError past timeout."""
        began = time.monotonic()
        while True:
            states = {n: await d.ready() for n, d in self.daemons.items()}
            if all(states.values()):
                return time.monotonic() - began
            if time.monotonic() - began > timeout_s:
                raise AssertionError(f"not ready after {timeout_s} s: {states}; logs {self.root}")
            await asyncio.sleep(0.25)

    async def _supervise(self) -> None:
        while not self._stopping.is_set():
            for daemon in self.daemons.values():
                if daemon.proc is not None and daemon.proc.poll() is not None:
                    code = daemon.proc.returncode
                    daemon.proc = None
                    if code != -9:
                        daemon.exits.append(code)
                        print(f"[chaos] {daemon.name} exited with {code}; restarting", flush=True)
                    await asyncio.sleep(1.0)
                    daemon.start()
            await asyncio.sleep(0.2)

    # -- the price's walk ----------------------------------------------------------------------

    async def _walk(self) -> None:
        while not self._stopping.is_set():
            self.source.step()
            await asyncio.sleep(self.rng.uniform(2.0, 6.0))

    # -- faults ----------------------------------------------------------------------------------

    async def kill(self, name: str) -> None:
        daemon = self.daemons[name]
        await asyncio.to_thread(daemon.kill9)
        daemon.kills += 1  # the supervisor starts it again

    def restart_broker(self, down_s: float) -> float:
        """Drain the broker (every request it received answered), stop it, start it again
        after ``down_s``. Blocks; returns the seconds the drain took."""
        drained = self.kafka_proxy.drain()
        self.tansu.restart(down_s)
        self.kafka_proxy.restore()
        return drained

    async def reorg(self, depth: int) -> None:
        answer = await self.w3.provider.make_request("anvil_reorg", [depth, []])
        assert "error" not in answer, answer
        self.reset_nonces()

    async def head(self) -> int:
        return int(await self.w3.eth.block_number)

    # -- the end ---------------------------------------------------------------------------------

    async def settle(self, timeout_s: float = 120.0) -> int:
        """Stop the traffic, then wait until the indexer's checkpoint passes the last block
        and every recorded update is confirmed. Returns the last block."""
        self._stopping.set()  # traffic and the walk stop; the supervisor too
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        self._tasks.clear()
        self._stopping.clear()
        self._tasks.append(asyncio.create_task(self._supervise()))
        last = await self.head()
        began = time.monotonic()
        conn = await connect(self.postgres.dsn)
        try:
            while True:
                checkpoint = await conn.fetchval(
                    "select block_number from indexer_checkpoints where network = $1", NETWORK
                )
                open_updates = await conn.fetchval(
                    "select count(*) from pusher_updates where confirmed_at is null"
                )
                unsent = await conn.fetchval(
                    "select count(*) from regen_render_jobs where sent_at is null"
                )
                if (
                    checkpoint is not None
                    and checkpoint >= last
                    and not open_updates
                    and not unsent
                ):
                    # One more pusher window: updates of the last renders may still be in Kafka.
                    await asyncio.sleep(4)
                    again = await conn.fetchval(
                        "select count(*) from pusher_updates where confirmed_at is null"
                    )
                    if not again:
                        return last
                if time.monotonic() - began > timeout_s:
                    raise AssertionError(
                        f"not settled after {timeout_s} s: checkpoint {checkpoint} of {last}, "
                        f"{open_updates} open updates, {unsent} unsent jobs; logs {self.root}"
                    )
                await asyncio.sleep(0.5)
        finally:
            await conn.close()


__all__ = ["CONTRACT", "DAEMONS", "ChaosWorld", "long_run"]
