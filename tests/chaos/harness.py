"""The chaos harness: the whole pipeline on services of its own, demo-like traffic, faults, and
the reads that tell whether anything was lost or repeated.

Services: anvil (a block every 0.5 s, history pruned to 256 blocks), tansu storing in S3 on a
local moto (so a broker restart keeps topics and offsets) and Postgres. Every daemon runs as a
process of its own (`dnft indexer`, `oracle`, `regenerator`, `api`, `pusher`) behind a small
supervisor that restarts one that exits, as Kubernetes would. The daemons reach the chain
through a fault-injecting JSON-RPC proxy; the traffic, the canary and the reorgs go straight
to anvil. A price server plays the oracle's source and can flap, lie (spike) or go stale.

Recovery is measured with a canary: a `Fed` of token 1 sent after a fault ends, timed until
its new version is confirmed on chain by the pusher (event -> Kafka -> state -> render ->
metadata -> ERC-4906 transaction -> confirmations).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import yaml
from aiohttp import web
from eth_utils.crypto import keccak

from demo.config import CONTRACT, FEED_ID, NETWORK, Endpoints, demo_collection, demo_settings
from demo.world import grant_pusher
from dnft.contracts import DevSigner, TransactionReverted, anvil_dev_key, at
from dnft.devservices import AnvilService, PostgresService, TansuService
from dnft.devservices.ports import free_port
from dnft.errors import DnftError
from dnft.migrations import apply_migrations
from tests.support.chain import read_topic
from tests.support.daemon import DaemonProcess
from tests.support.rpcproxy import Faults, RpcProxy

DAEMONS = ("indexer", "oracle", "regenerator", "api", "pusher")
TOKENS = 12
# Holders mint up to this many tokens: every token re-renders when the price changes bucket,
# so an unbounded collection would make later faults' recoveries slower than earlier ones'.
MAX_TOKENS = 40
HOLDERS = 3
CANARY_TOKEN = 1
CANARY_ACCOUNT = 8  # not a holder (0..HOLDERS-1), not the pusher (9)
BLOCK_TIME_S = 0.5
# Deeper than the deepest reorg of the storm (8): blocks past it are final for the indexer and
# the pusher.
REORG_SAFE_DEPTH = 10
MOODS = ("calm", "playful", "sleepy", "curious", "grumpy", "proud")
FED_TOPIC = "0x" + keccak(text="Fed(uint256,address,uint256)").hex()


def long_run() -> bool:
    """`make chaos` sets CHAOS_LONG=1: ten kill rounds, longer faults, a longer storm."""
    return os.environ.get("CHAOS_LONG") == "1"


@dataclass
class FaultResult:
    fault: str
    detail: str
    recovery_s: float


@dataclass
class ChaosReport:
    seed: int
    faults: list[FaultResult] = field(default_factory=list)
    baseline_s: float = 0.0

    def add(self, fault: str, detail: str, recovery_s: float) -> None:
        self.faults.append(FaultResult(fault, detail, recovery_s))
        print(f"[chaos] {fault:<22} {detail:<60} recovered in {recovery_s:6.1f} s", flush=True)

    def table(self) -> str:
        lines = [f"chaos run, seed {self.seed}; canary with no fault: {self.baseline_s:.1f} s"]
        lines.append(f"{'fault':<22} {'detail':<60} {'recovery (s)':>12}")
        lines += [f"{f.fault:<22} {f.detail:<60} {f.recovery_s:>12.1f}" for f in self.faults]
        return "\n".join(lines)


# --- the oracle's source ---------------------------------------------------------------------


class PriceSource:
    """``GET /price`` -> ``{"price": "612.5", "ts": 1700000000}``: a seeded random walk across
    the demo collection's market buckets, or a fault: ``flap`` (500s, dropped connections and
    broken JSON in turn), ``spike`` (every other reading 25x the walk) or ``stale`` (a value
    stamped an hour ago). Every lie served is remembered, to check none was published."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.value = Decimal("450")
        self.mode = "ok"
        self.lies: set[Decimal] = set()
        self.served = 0
        self._turn = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/price"

    def step(self) -> None:
        """Move the walk (a bucket boundary every few steps: 200/400/700/1000)."""
        move = Decimal(self.rng.randint(-150, 150))
        self.value = min(max(self.value + move, Decimal(120)), Decimal(1300))

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/price", self._price)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _price(self, request: web.Request) -> web.StreamResponse:
        self.served += 1
        self._turn += 1
        now = int(time.time())
        if self.mode == "flap":
            kind = self._turn % 4
            if kind == 0:
                return web.Response(status=500, text="upstream error")
            if kind == 1:
                assert request.transport is not None
                request.transport.close()
                return web.Response(status=500)
            if kind == 2:
                return web.Response(text='{"price": "61', content_type="application/json")
        if self.mode == "spike" and self._turn % 2 == 0:
            lie = self.value * 25
            self.lies.add(lie)
            return web.json_response({"price": str(lie), "ts": now})
        if self.mode == "stale":
            lie = Decimal("977.13") + Decimal(self._turn % 7)  # distinctive values
            self.lies.add(lie)
            return web.json_response({"price": str(lie), "ts": now - 3600})
        return web.json_response({"price": str(self.value), "ts": now})


# --- daemons ------------------------------------------------------------------------------


class Supervised(DaemonProcess):
    """A daemon restarted when it exits, as a Kubernetes Deployment would (after 1 s)."""

    def __init__(self, name: str, config: Path, port: int, log: Path) -> None:
        super().__init__(name, config, port, log)
        self.name = name
        self.kills = 0
        self.exits: list[int] = []  # exit codes of exits it was not asked for


# --- the world ------------------------------------------------------------------------------


class ChaosWorld:
    """Start with :meth:`start`, stop with :meth:`stop` (everything, whatever failed)."""

    def __init__(self, root: Path, seed: int) -> None:
        self.root = root
        self.seed = seed
        self.rng = random.Random(seed)
        self.anvil = AnvilService(root, block_time=BLOCK_TIME_S)
        self.tansu = TansuService(root, durable=True)
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

    # -- traffic -------------------------------------------------------------------------------

    async def _walk(self) -> None:
        while not self._stopping.is_set():
            self.source.step()
            await asyncio.sleep(self.rng.uniform(2.0, 6.0))

    async def _traffic(self) -> None:
        """Holders feed tokens, set moods, mint and transfer, one transaction every ~0.3 s."""
        rng = random.Random(self.seed + 1)
        while not self._stopping.is_set():
            if self.traffic_paused.is_set():
                await asyncio.sleep(0.2)
                continue
            tokens = [t for t in self.owners if t != CANARY_TOKEN]
            token = rng.choice(tokens)
            holder = self.owners[token]
            signer = self.signers[holder]
            roll = rng.random()
            try:
                if roll < 0.6:
                    amount = rng.randint(1, 10**15)
                    data = self.collection.encode_abi("feed", [token])
                    await self._send(signer, data, value=amount)
                    self.traffic_stats["fed"] += 1
                elif roll < 0.8:
                    data = self.collection.encode_abi(
                        "setTrait", [token, "mood", rng.choice(MOODS)]
                    )
                    await self._send(signer, data)
                    self.traffic_stats["traits"] += 1
                elif roll < 0.9 and len(self.owners) < MAX_TOKENS:
                    receipt = await self._send(
                        signer, self.collection.encode_abi("mint", [signer.address])
                    )
                    minted = self.collection.events.Transfer().process_receipt(receipt)
                    for log in minted:
                        self.owners[int(log["args"]["tokenId"])] = holder
                    self.traffic_stats["mints"] += 1
                else:
                    other = rng.choice([h for h in self.signers if h != holder])
                    data = self.collection.encode_abi(
                        "transferFrom", [signer.address, self.signers[other].address, token]
                    )
                    await self._send(signer, data)
                    self.owners[token] = other
                    self.traffic_stats["transfers"] += 1
            except TransactionReverted:
                # A reorg undid a mint or transfer this loop counted on: ask the chain.
                self.traffic_stats["reverted"] += 1
                await self._refresh_owner(token)
            except DnftError:
                self.traffic_stats["failed"] += 1
                signer._nonce = None  # a reorg dropped it, or the node refused it: re-read
            await asyncio.sleep(rng.uniform(0.1, 0.5))

    async def _send(self, signer: DevSigner, data: str, value: int = 0) -> Any:
        tx = {"to": self.collection.address, "data": data, "value": value}
        return await signer.transact(self.w3, tx, wait_s=10)  # type: ignore[arg-type]

    async def _refresh_owner(self, token: int) -> None:
        with contextlib.suppress(Exception):
            owner = await self.collection.functions.ownerOf(token).call()
            by_address = {s.address.lower(): i for i, s in self.signers.items()}
            if owner.lower() in by_address:
                self.owners[token] = by_address[owner.lower()]
            else:
                self.owners.pop(token, None)

    def reset_nonces(self) -> None:
        """After a reorg: transactions the reorg dropped left gaps in the local nonces."""
        for signer in [*self.signers.values(), self.canary_signer]:
            if signer is not None:
                signer._nonce = None

    # -- faults ----------------------------------------------------------------------------------

    async def kill(self, name: str) -> None:
        daemon = self.daemons[name]
        await asyncio.to_thread(daemon.kill9)
        daemon.kills += 1  # the supervisor starts it again

    async def reorg(self, depth: int) -> None:
        answer = await self.w3.provider.make_request("anvil_reorg", [depth, []])
        assert "error" not in answer, answer
        self.reset_nonces()

    async def head(self) -> int:
        return int(await self.w3.eth.block_number)

    # -- measures --------------------------------------------------------------------------------

    async def canary(self, timeout_s: float = 120.0) -> float:
        """Seconds from now until a new `Fed` of the canary token is a confirmed version."""
        assert self.canary_signer is not None
        began = time.monotonic()
        data = self.collection.encode_abi("feed", [CANARY_TOKEN])
        while True:
            try:
                await self._send(self.canary_signer, data, value=1)
                break
            except DnftError:
                self.canary_signer._nonce = None
                if time.monotonic() - began > timeout_s:
                    raise
                await asyncio.sleep(0.5)
        expected = await self.fed_count(CANARY_TOKEN)
        row: Any = None
        while True:
            with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError):
                conn = await connect(self.postgres.dsn)
                try:
                    row = await conn.fetchrow(
                        "select v.version, u.confirmed_at from token_versions v "
                        "left join pusher_updates u on u.token_id = v.token_id "
                        "and u.version = v.version where v.token_id = $1 "
                        "and v.state->'traits'->>'fed' = $2 order by v.version desc limit 1",
                        CANARY_TOKEN,
                        str(expected),
                    )
                finally:
                    await conn.close()
            if row is not None and row["confirmed_at"] is not None:
                return time.monotonic() - began
            if time.monotonic() - began > timeout_s:
                raise AssertionError(
                    f"canary (fed={expected}) not confirmed after {timeout_s} s: {row}; "
                    f"logs in {self.root / 'logs'}"
                )
            await asyncio.sleep(0.2)

    async def feed_recovery(self, timeout_s: float = 60.0) -> float:
        """Seconds until the oracle publishes a new true reading of the source."""
        began = time.monotonic()
        self.source.step()
        while True:
            self.source.value += Decimal("0.5")  # a value never served before
            target = float(self.source.value)
            for _ in range(10):
                metrics = await self.daemons["oracle"].metrics()
                if metrics.get("dnft_oracle_last_value") == target:
                    return time.monotonic() - began
                await asyncio.sleep(0.2)
            if time.monotonic() - began > timeout_s:
                raise AssertionError(f"the oracle did not publish {target} in {timeout_s} s")

    async def fed_count(self, token: int) -> int:
        """`Fed` events of ``token`` on the canonical chain (raw eth_getLogs on anvil)."""
        answer = await self.w3.provider.make_request(
            "eth_getLogs",
            [
                {
                    "address": self.collection.address,
                    "fromBlock": hex(int(self.deploy["deploy_block"])),
                    "toBlock": "latest",
                    "topics": [FED_TOPIC, "0x" + token.to_bytes(32, "big").hex()],
                }
            ],
        )
        return len(answer["result"])

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

    def audit(self, last_block: int) -> dict[str, Any]:
        """`dnft audit --json` over the run's blocks (exit 0 or 1; 2 fails here). Blocks: call
        it in a thread (the proxy and the price source answer on this process's loop).

        A report that is not clean is written to ``audit-N.json`` beside the logs. One whose
        only finding is events missing from Kafka is read again, waiting longer for quiet:
        tansu under-reports partition ends and fetches from S3 storage can pause."""
        report: dict[str, Any] = {}
        for attempt, quiet_s in enumerate((2, 10, 20), start=1):
            proc = subprocess.run(
                [sys.executable, "-m", "dnft", "--config", str(self.config_file), "audit",
                 "--network", NETWORK, "--from-block", str(self.deploy["deploy_block"]),
                 "--to-block", str(last_block), "--quiet-s", str(quiet_s), "--json"],
                capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
            )  # fmt: skip
            assert proc.returncode in (0, 1), proc.stderr
            report = json.loads(proc.stdout)
            if report["clean"]:
                return report
            (self.root / f"audit-{attempt}.json").write_text(json.dumps(report, indent=2))
            kafka, postgres = report["kafka"], report.get("postgres") or {}
            only_kafka_missing = (
                not (kafka["extra"] or kafka["duplicated"])
                and not any(postgres.get(k) for k in ("missing", "extra", "duplicated"))
                and report["versions"]["clean"]
                and report["transactions"]["clean"]
            )
            print(f"[chaos] audit {attempt} not clean: kafka missing {kafka['missing']}; "
                  f"postgres missing {postgres.get('missing')}", flush=True)  # fmt: skip
            if not only_kafka_missing:
                break
        return report

    async def token_truth(self) -> dict[int, tuple[int, int]]:
        """Token -> (Fed events on chain, `fed` of its newest version)."""
        conn = await connect(self.postgres.dsn)
        try:
            rows = await conn.fetch(
                "select distinct on (token_id) token_id, state->'traits'->>'fed' as fed "
                "from token_versions order by token_id, version desc"
            )
        finally:
            await conn.close()
        newest = {int(r["token_id"]): int(r["fed"]) for r in rows}
        return {t: (await self.fed_count(t), newest.get(t, -1)) for t in sorted(self.owners)}

    async def outbox(self) -> dict[str, int]:
        conn = await connect(self.postgres.dsn)
        try:
            row = await conn.fetchrow(
                "select count(*) as updates, count(confirmed_at) as confirmed, "
                "count(failed_at) as failed from pusher_updates"
            )
            versions = await conn.fetchval("select count(*) from token_versions")
        finally:
            await conn.close()
        assert row is not None
        return {**dict(row), "versions": versions}

    def published_values(self) -> list[Decimal]:
        topic = (
            self.settings.get("kafka", {})
            .get("topics", {})
            .get("oracle_observations", "dnft.oracle.observations.v1")
        )
        messages = read_topic(self.tansu.bootstrap, topic, quiet_s=2.0)
        return [Decimal(m["value"]) for m in messages if m.get("feed_id") == FEED_ID]


async def connect(dsn: str) -> asyncpg.Connection:
    return await asyncpg.connect(dsn, timeout=10)


__all__ = ["CONTRACT", "DAEMONS", "ChaosWorld", "long_run"]
