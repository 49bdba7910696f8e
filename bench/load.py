"""Benchmark (issue 10): sustained chain load plus 10 feeds at 1 Hz; lags bounded, RSS flat.

Real servers on 127.0.0.1, started here: anvil mining a block every second (``--prune-history
256``; block gas limit raised to 100M so that the load stays below the EIP-1559 target and the
base fee does not climb for ten minutes), tansu and Postgres. Each daemon runs as its own
subprocess with its own health port, so memory is per daemon: ``dnft indexer``, ``dnft
oracle``, ``dnft regenerator`` (planner and render worker in one process, as the command runs
them by default), ``dnft api`` and ``dnft pusher`` (signing with anvil dev account 9, granted
UPDATER_ROLE as ``dnft demo`` does). The configuration is the demo's whole-engine one
(``demo.config.demo_settings``) with two changes:

- a second DynamicCollection, ``load``, is a configured contract (the indexer follows it and
  every event goes through Kafka to the planner) but no collection is bound to it. It
  carries the bulk load: ``setTokenURIs`` transactions from dev account 7 over a fixed set
  of 1,000 minted ids, one ERC-4906 ``MetadataUpdate`` log per id, paced to
  ``--events-per-s`` (aimed 2% above it, so that the edges of the measuring window cannot pull
  a sustained target under it). Not mints: anvil's time to mine a block grows with its total
  state (measured here, 1,000 mints per block: 80 ms at 50k minted tokens, 470 ms at 300k,
  940 ms at 600k, with ``--prune-history`` 1 or 256 alike, and spread over 8 contracts
  alike), so ten minutes of 1,000 mints/s outgrow a 1 s block time after about six minutes
  (a first full run showed it: 1,000 events/s fell to ~450). Rewriting URIs keeps anvil's
  state constant; for dnft a log is a log (``MetadataUpdate`` has one topic and 32 bytes of
  data, a ``Transfer`` four topics). Not bound to a collection, because rendering 1,000 new
  tokens a second is not what a 2-core box does (procedural renders run at 150-300 images/s
  per core; see bench/render.py); in production render capacity scales with GPU workers.
  The sender pauses when the chain falls more than 5 s of events behind what it sent, so an
  overloaded node shows up as a missed rate, not as an ever-growing transaction pool.
- ten HTTP feeds polled every second (``interval_s: 1``) from a local aiohttp server serving
  seeded random walks. ``eth-usd`` is bound to the demo collection's ``market`` trait; its walk
  reverts to a level just under a bucket bound, so a re-render of the whole (50-token)
  collection happens now and then, not every second. The other nine are published and stored.

The bound collection gets the demo's holder traffic (``Fed`` / ``TraitSet``, one transaction
every 0.5 s), so the regenerator renders and the pusher pushes throughout; a small client reads
token metadata from the API five times a second.

Measured every 2 s: each daemon's RSS (VmRSS of the process and its children) and its
``/metrics``; the chain head and the indexer's checkpoint; every block's logs of the two
contracts (from ``eth_getLogs``, the chain itself, not what was sent).

Criteria, judged on the samples after warm-up (``--warmup``, default 15% of the run, at least
10 s), all of which must hold for exit status 0:

- chain events/s (logs in blocks after warm-up over their timestamps) >= ``--events-per-s``;
- events the indexer published per second / chain events per second >= 0.98 (same window);
- every feed published at >= 0.85 Hz (the oracle waits ``interval_s`` after a read's step
  ends, so a 1 s interval gives 1 / (1 s + step time): 0.90-0.99 Hz in short runs here);
  renders and confirmed pushes happened after warm-up;
- lags bounded: each lag's maximum <= its stated bound, and the mean of its last third of
  samples is at most a stated margin above the mean of its first third (not growing).
  Lags: blocks between the chain head and the indexer's checkpoint (Postgres) and the
  indexer's own ``dnft_indexer_head_lag_blocks``; Kafka backlogs as messages produced minus
  messages consumed, from the producing and the consuming daemon's counters (chain events ->
  planner, render jobs -> render worker, metadata updates -> pusher; tansu under-reports
  partition ends, so ``dnft_kafka_consumer_lag_messages`` reads low, and is shown as well);
  the pusher's oldest pending update; the oldest feed value (``dnft_oracle_value_age_seconds``);
- each daemon's RSS: the maximum after warm-up / the value at the end of warm-up < 1.10;
- no daemon died, and the API answered every request without a 5xx or a transport error.

Everything started is stopped at the end, on a failure and on Ctrl-C or SIGTERM alike.

    .venv/bin/python -m bench.load [--duration 600] [--warmup S] [--events-per-s 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import yaml
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from bench.load_criteria import (
    BoundedVerdict,
    GrowthVerdict,
    block_rate,
    bounded,
    counter_rate,
    growth,
)
from bench.procfs import usage
from demo.config import (
    CONTRACT,
    FEED_ID,
    NETWORK,
    Endpoints,
    demo_collection,
    demo_settings,
)
from demo.traffic import Traffic
from demo.world import grant_pusher, token_owners
from dnft.config import Settings, settings_from_mapping
from dnft.devservices import AnvilService, PostgresService, TansuService, free_port
from dnft.devservices.base import tail_log
from dnft.devservices.process import ManagedProcess, spawn
from dnft.devservices.web import LoopbackSite
from dnft.migrations import apply_migrations

REPO = Path(__file__).resolve().parents[1]

LOAD_CONTRACT = "load"
LOAD_ACCOUNT = 7  # the bulk sender; holders use 0-3, the pusher 9
LOAD_TOKENS = 1_000  # the fixed set of ids whose URIs the load rewrites
BLOCK_TIME_S = 1.0
GAS_LIMIT = 100_000_000
MAX_EVENTS_PER_TX = 500
SEND_EVERY_S = 0.25
AIM_ABOVE = 1.02
MAX_BEHIND_S = 5.0  # the sender pauses when the chain is this many seconds of events behind
BOUND_TOKENS = 50
HOLDERS = 4
TX_EVERY_S = 0.5
FEEDS = 10
FEED_INTERVAL_S = 1.0
API_READS_PER_S = 5.0
SAMPLE_EVERY_S = 2.0
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
RSS_LIMIT = 0.10
MIN_INDEXED_RATIO = 0.98
# The oracle schedules a feed's next read interval_s after its step (read, record, publish,
# commit) ends, so a 1 s interval publishes at 1 / (1 s + step time): 0.90-0.99 Hz measured.
MIN_FEED_HZ = 0.85
DAEMONS = ("indexer", "oracle", "regenerator", "api", "pusher")
# eth-usd reverts to just under the demo collection's "bull" bound (1000 USD): it crosses now
# and then, re-rendering the bound tokens, but is not a re-render every second.
ETH_LEVEL, ETH_STEP, ETH_REVERT = 985.0, 3.0, 0.03


class GasAnvil(AnvilService):
    """anvil with a raised block gas limit (see the module docstring)."""

    def argv(self, binary: Path, port: int) -> list[str]:
        return [*super().argv(binary, port), "--gas-limit", str(GAS_LIMIT)]


# --- the feeds --------------------------------------------------------------------------------


class WalkFeeds:
    """An HTTP server on 127.0.0.1 serving ``FEEDS`` seeded random walks: each
    ``GET /feeds/{id}`` takes that walk one step and answers ``{"price": "985.12"}``, so every
    poll reads a new value (a walk stepped by a clock would alias with the 1 Hz polls and
    sometimes be read twice)."""

    def __init__(self, seed: int = 10) -> None:
        self.rng = random.Random(seed)
        self.ids = [FEED_ID, *(f"load-{i}" for i in range(1, FEEDS))]
        self.values = {fid: ETH_LEVEL if fid == FEED_ID else 100.0 for fid in self.ids}
        app = web.Application()
        app.router.add_get("/feeds/{feed_id}", self._answer)
        self._site = LoopbackSite(app)

    def url(self, feed_id: str) -> str:
        return f"{self._site.base_url}/feeds/{feed_id}"

    def step(self, feed_id: str) -> float:
        value = self.values[feed_id]
        if feed_id == FEED_ID:
            value += ETH_REVERT * (ETH_LEVEL - value) + self.rng.gauss(0, ETH_STEP)
        else:
            value *= 1 + self.rng.gauss(0, 0.002)
        self.values[feed_id] = max(value, 1.0)
        return self.values[feed_id]

    async def start(self) -> None:
        await self._site.start()

    async def stop(self) -> None:
        await self._site.stop()

    async def _answer(self, request: web.Request) -> web.Response:
        feed_id = request.match_info["feed_id"]
        if feed_id not in self.values:
            raise web.HTTPNotFound()
        return web.json_response({"price": f"{self.step(feed_id):.2f}"})


# --- daemons and their figures -----------------------------------------------------------------


@dataclass
class Daemon:
    name: str
    health_port: int
    log: Path
    process: ManagedProcess | None = None
    rss: list[tuple[float, float]] = field(default_factory=list)  # (t, MB)
    cpu: list[tuple[float, float]] = field(default_factory=list)  # (t, CPU seconds)

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_metrics(text: str) -> Samples:
    """dnft_* samples of a /metrics page by (sample name, labels)."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("dnft_"):
            continue
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples named ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for (n, ls), v in samples.items():
        if n == name:
            out[dict(ls).get(label, "")] += v
    return out


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Figures:
    """Everything sampled during the run; times in seconds since the load started."""

    series: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))
    feed_publishes: dict[str, list[tuple[float, float]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    blocks: list[tuple[int, int, int]] = field(default_factory=list)  # (number, ts, logs)
    block_seen_at: dict[int, float] = field(default_factory=dict)
    load_events_on_chain: int = 0
    sent_events: int = 0
    sender_pauses: int = 0
    api_ok: int = 0
    api_errors: int = 0
    stale_after_s: float = 0.0

    def add(self, key: str, t: float, value: float) -> None:
        self.series[key].append((t, value))


class LoadRun:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="dnft-load-"))
        self.anvil = GasAnvil(self.workdir, block_time=BLOCK_TIME_S)
        self.tansu = TansuService(self.workdir)
        self.pg = PostgresService(self.workdir)
        self.services_started: list[Any] = []
        self.feeds = WalkFeeds()
        self.feeds_started = False
        self.daemons: list[Daemon] = []
        self.figures = Figures()
        self.stop_load = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.traffic_task: asyncio.Task[None] | None = None
        self.traffic: Traffic | None = None
        self.settings: Settings | None = None
        self.addresses: dict[str, str] = {}
        self.t0 = 0.0
        self.gas_per_event = 0
        self.failure = ""
        self.started = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def say(self, text: str) -> None:
        print(f"[load {time.monotonic() - self.started:6.1f}s] {text}", flush=True)

    # --- setup ------------------------------------------------------------------------------

    async def execute(self) -> int:
        a = self.args
        self.say(
            f"workdir {self.workdir}; starting anvil (block time {BLOCK_TIME_S:g} s), "
            "tansu, Postgres"
        )
        for service in (self.anvil, self.tansu, self.pg):
            self.services_started.append(service)
            # Blocking on purpose: a signal is handled once a start has returned, so the
            # cleanup never races a service still starting in a thread.
            service.start()
        await apply_migrations(self.pg.dsn)
        config = await self._deploy_and_configure()
        self.say("starting " + ", ".join(f"dnft {d}" for d in DAEMONS))
        for name in DAEMONS:
            self._start_daemon(name, config)
        await self._wait_ready()
        self.say(
            f"all ready; load: {a.events_per_s:g} events/s for {a.duration:g} s "
            f"(warm-up {a.warmup:g} s), {FEEDS} feeds at {1 / FEED_INTERVAL_S:g} Hz"
        )
        self.t0 = time.monotonic()
        assert self.traffic is not None
        self.traffic_task = asyncio.create_task(self.traffic.run(self.stop_load))
        self.tasks = [
            asyncio.create_task(self._send_load()),
            self.traffic_task,
            asyncio.create_task(self._read_api()),
            asyncio.create_task(self._watch_chain()),
        ]
        return await self._sample_until_done()

    async def _deploy_and_configure(self) -> Path:
        from web3 import AsyncHTTPProvider, AsyncWeb3

        from dnft.contracts import DevSigner, deploy
        from dnft.sample import deploy_sample

        rpc = self.anvil.rpc_url
        report = await deploy_sample(rpc, mint=BOUND_TOKENS, holders=HOLDERS)
        bound = report["contracts"]["DynamicCollection"]
        api_port = free_port()
        w3 = AsyncWeb3(AsyncHTTPProvider(rpc))
        try:
            admin = DevSigner()
            load = await deploy(
                w3, "DynamicCollection", "Load", "LOAD", "http://127.0.0.1/", True, 0, sender=admin
            )
            self.gas_per_event = await self._prepare_load(w3, load, admin)
        finally:
            await w3.provider.disconnect()
        self.addresses = {CONTRACT: bound.lower(), LOAD_CONTRACT: load.lower()}
        self.say(
            f"deployed: bound collection {bound} ({BOUND_TOKENS} tokens), load {load} "
            f"({LOAD_TOKENS} tokens; {self.gas_per_event} gas per load event with margin)"
        )
        key_file = await grant_pusher(rpc, bound, api_port, self.workdir / "pusher.key")

        await self.feeds.start()
        self.feeds_started = True
        collection_file = self.workdir / "collection.yaml"
        collection_file.write_text(yaml.safe_dump(demo_collection(), sort_keys=False))
        endpoints = Endpoints(
            rpc_url=rpc,
            ws_url=self.anvil.ws_url,
            chain_id=int(report["chain_id"]),
            kafka=self.tansu.bootstrap,
            dsn=self.pg.dsn,
            feed_url=self.feeds.url(FEED_ID),
            api_port=api_port,
            health_port=0,
        )
        raw = demo_settings(
            endpoints,
            collection_file=collection_file,
            address=bound,
            start_block=int(report["deploy_block"]),
            blobs=self.workdir / "blobs",
            signer_key_file=key_file,
            feed_interval_s=FEED_INTERVAL_S,
        )
        template = raw["feeds"][0]
        raw["feeds"] = [
            template | {"id": fid, "url": self.feeds.url(fid)} for fid in self.feeds.ids
        ]
        raw["contracts"].append(raw["contracts"][0] | {"name": LOAD_CONTRACT, "address": load})
        self.settings = settings_from_mapping(raw, {})  # raises ConfigError naming the key
        config = self.workdir / "dnft.yaml"
        config.write_text(yaml.safe_dump(raw, sort_keys=False))
        self.traffic = Traffic(rpc, bound, token_owners(report), every_s=TX_EVERY_S, seed=10)
        return config

    def _start_daemon(self, name: str, config: Path) -> None:
        port = free_port()
        daemon = Daemon(name, port, self.workdir / "logs" / f"{name}.log")
        env = {k: v for k, v in os.environ.items() if not k.startswith("DNFT_")}
        env["DNFT_HTTP__PORT"] = str(port)
        argv = [sys.executable, "-m", "dnft", "--config", str(config), name]
        daemon.process = spawn(f"dnft-{name}", argv, daemon.log, env=env)
        self.daemons.append(daemon)

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        pending = list(self.daemons)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while pending:
                for daemon in list(pending):
                    if not daemon.alive():
                        raise RuntimeError(self._died(daemon, "exited while starting"))
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                        url = f"http://127.0.0.1:{daemon.health_port}/readyz"
                        async with http.get(url) as response:
                            if response.status == 200:
                                pending.remove(daemon)
                if time.monotonic() > deadline:
                    names = ", ".join(d.name for d in pending)
                    raise RuntimeError(f"not ready after {READY_TIMEOUT_S:g} s: {names}")
                await asyncio.sleep(0.5)

    def _died(self, daemon: Daemon, what: str) -> str:
        return f"dnft {daemon.name} {what}; log {daemon.log}:\n{tail_log(daemon.log)}"

    # --- load -------------------------------------------------------------------------------

    async def _prepare_load(self, w3: Any, address: str, admin: Any) -> int:
        """Mint LOAD_TOKENS on the load contract, let the load account set their URIs, and
        write every URI once (later writes overwrite slots: the state stops growing).
        Returns the gas per event of a rewrite, with a 30% margin."""
        from eth_utils.crypto import keccak

        from dnft.contracts import DevSigner, anvil_dev_key, at, transact

        signer = DevSigner(await asyncio.to_thread(anvil_dev_key, LOAD_ACCOUNT))
        load = at(w3, "DynamicCollection", address)
        updater = keccak(text="UPDATER_ROLE")
        await transact(w3, load, "grantRole", updater, signer.address, sender=admin)
        for _ in range(LOAD_TOKENS // MAX_EVENTS_PER_TX):
            await transact(w3, load, "mintBatch", signer.address, MAX_EVENTS_PER_TX, sender=signer)
        gas_used = 0
        for round_ in range(3):
            ids = list(range(1, MAX_EVENTS_PER_TX + 1)) if round_ == 2 else None
            for first in range(1, LOAD_TOKENS + 1, MAX_EVENTS_PER_TX):
                batch = ids or list(range(first, first + MAX_EVENTS_PER_TX))
                receipt = await transact(
                    w3, load, "setTokenURIs", batch, [f"v{round_}"] * len(batch), sender=signer
                )
                gas_used = int(receipt["gasUsed"])
                if ids:
                    break
        return math.ceil(gas_used / MAX_EVENTS_PER_TX * 1.3)

    async def _send_load(self) -> None:
        """setTokenURIs on the load contract (one MetadataUpdate per id), paced to AIM_ABOVE x
        the target rate, cycling over the LOAD_TOKENS ids."""
        from web3 import AsyncHTTPProvider, AsyncWeb3

        from dnft.contracts import DevSigner, anvil_dev_key, at

        rate = self.args.events_per_s * AIM_ABOVE
        w3 = AsyncWeb3(AsyncHTTPProvider(self.anvil.rpc_url))
        signer = DevSigner(await asyncio.to_thread(anvil_dev_key, LOAD_ACCOUNT))
        contract = at(w3, "DynamicCollection", self.addresses[LOAD_CONTRACT])
        fee = {"maxFeePerGas": 50 * 10**9, "maxPriorityFeePerGas": 10**9}
        fig = self.figures
        try:
            started = time.monotonic()
            while not self.stop_load.is_set():
                due = int(rate * (time.monotonic() - started)) - fig.sent_events
                if fig.sent_events - fig.load_events_on_chain > MAX_BEHIND_S * rate:
                    fig.sender_pauses += 1
                    started += SEND_EVERY_S  # what was not sent now is not owed later
                elif due > 0:
                    count = min(due, MAX_EVENTS_PER_TX)
                    ids = [(fig.sent_events + i) % LOAD_TOKENS + 1 for i in range(count)]
                    uri = f"v{fig.sent_events // LOAD_TOKENS % 2}"
                    data = contract.encode_abi("setTokenURIs", [ids, [uri] * count])
                    tx: Any = {"to": contract.address, "data": data}
                    tx |= {"gas": self.gas_per_event * count + 100_000, **fee}
                    await signer.send(w3, tx)
                    fig.sent_events += count
                    if count == MAX_EVENTS_PER_TX:
                        continue  # catching up: send the next one at once
                await asyncio.sleep(SEND_EVERY_S)
        finally:
            await w3.provider.disconnect()

    async def _read_api(self) -> None:
        assert self.settings is not None
        base = f"http://127.0.0.1:{self.settings.api.port}"
        rng = random.Random(5)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            while not self.stop_load.is_set():
                url = f"{base}/tokens/{rng.randint(1, BOUND_TOKENS)}"
                try:
                    async with http.get(url) as response:
                        await response.read()
                        if response.status >= 500:
                            self.figures.api_errors += 1
                        else:
                            self.figures.api_ok += 1
                except (aiohttp.ClientError, TimeoutError):
                    self.figures.api_errors += 1
                await asyncio.sleep(1 / API_READS_PER_S)

    async def _watch_chain(self) -> None:
        """Per new block: its timestamp and the logs of both contracts (raw JSON-RPC)."""
        url = self.anvil.rpc_url
        addresses = list(self.addresses.values())
        load = self.addresses[LOAD_CONTRACT]
        fig = self.figures

        async def call(http: aiohttp.ClientSession, method: str, params: list[Any]) -> Any:
            body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
            headers = {"Content-Type": "application/json"}
            async with http.post(url, data=body, headers=headers) as response:
                return orjson.loads(await response.read())["result"]

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            last = int(await call(http, "eth_blockNumber", []), 16)
            while True:
                await asyncio.sleep(0.5)
                head = int(await call(http, "eth_blockNumber", []), 16)
                if head <= last:
                    continue
                logs = await call(
                    http,
                    "eth_getLogs",
                    [{"address": addresses, "fromBlock": hex(last + 1), "toBlock": hex(head)}],
                )
                per_block: dict[int, int] = defaultdict(int)
                for log in logs:
                    per_block[int(log["blockNumber"], 16)] += 1
                    if log["address"].lower() == load:
                        fig.load_events_on_chain += 1
                for number in range(last + 1, head + 1):
                    block = await call(http, "eth_getBlockByNumber", [hex(number), False])
                    fig.blocks.append((number, int(block["timestamp"], 16), per_block[number]))
                    fig.block_seen_at[number] = self.now()
                last = head

    # --- sampling ---------------------------------------------------------------------------

    async def _sample_until_done(self) -> int:
        a = self.args
        conn = await asyncpg.connect(self.pg.dsn)
        last_say = 0.0
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
                while self.now() < a.duration:
                    for task in self.tasks:
                        if task.done():
                            error = task.exception()
                            self.failure = f"a load task stopped: {error!r}"
                            return 1
                    for daemon in self.daemons:
                        if not daemon.alive():
                            self.failure = self._died(daemon, "died during the run")
                            return 1
                    await self._sample(http, conn)
                    if self.now() - last_say >= 30:
                        last_say = self.now()
                        self.say(self._progress())
                    await asyncio.sleep(SAMPLE_EVERY_S)
        finally:
            await conn.close()
        return 0

    async def _sample(self, http: aiohttp.ClientSession, conn: asyncpg.Connection) -> None:
        assert self.settings is not None
        s = self.settings
        topics, fig = s.kafka.topics, self.figures
        pages: dict[str, Samples] = {}
        for daemon in self.daemons:
            assert daemon.process is not None
            rss, cpu = usage(daemon.process.pid)
            daemon.rss.append((self.now(), rss))
            daemon.cpu.append((self.now(), cpu))
            try:
                url = f"http://127.0.0.1:{daemon.health_port}/metrics"
                async with http.get(url) as response:
                    pages[daemon.name] = parse_metrics(await response.text())
            except (aiohttp.ClientError, TimeoutError):
                pages[daemon.name] = {}
        t = self.now()
        for name, pid, kids in self._others():
            fig.add(f"cpu:{name}", t, usage(pid, children=kids)[1])
        # The checkpoint first, then the head: a block mined in between counts as lag, so the
        # figure can only overstate it.
        checkpoint = await conn.fetchval(
            "select block_number from indexer_checkpoints where network = $1", NETWORK
        )
        head = await self._head(http)
        if checkpoint is not None:
            fig.add("head_minus_checkpoint", t, head - checkpoint)
        idx, regen, pusher, oracle = (
            pages[n] for n in ("indexer", "regenerator", "pusher", "oracle")
        )
        if idx:
            fig.add("indexer_logs", t, total(idx, "dnft_indexer_logs_total"))
            fig.add("indexer_head_lag", t, total(idx, "dnft_indexer_head_lag_blocks"))
        produced = "dnft_kafka_messages_produced_total"
        consumed = "dnft_kafka_messages_consumed_total"
        lag = "dnft_kafka_consumer_lag_messages"
        planner, render, push = (
            s.regenerator.planner_group,
            s.regenerator.render_group,
            s.pusher.group,
        )
        if idx and regen:
            backlog = total(idx, produced, topic=topics.chain_events) - total(
                regen, consumed, group=planner, topic=topics.chain_events
            )
            fig.add("planner_backlog", t, max(0.0, backlog))
        if regen:
            backlog = total(regen, produced, topic=topics.render_jobs) - total(
                regen, consumed, group=render, topic=topics.render_jobs
            )
            fig.add("render_backlog", t, max(0.0, backlog))
            fig.add("planner_lag_metric", t, total(regen, lag, group=planner))
            fig.add("renders", t, total(regen, "dnft_renders_total", outcome="rendered"))
        if regen and pusher:
            backlog = total(regen, produced, topic=topics.metadata_updates) - total(
                pusher, consumed, group=push, topic=topics.metadata_updates
            )
            fig.add("pusher_backlog", t, max(0.0, backlog))
        if pusher:
            fig.add("pusher_lag_metric", t, total(pusher, lag, group=push))
            fig.add("pusher_oldest_pending", t, total(pusher, "dnft_pusher_oldest_pending_seconds"))
            fig.add(
                "pushes", t, total(pusher, "dnft_pusher_transactions_total", outcome="confirmed")
            )
        if oracle:
            ages = by_label(oracle, "dnft_oracle_value_age_seconds", "feed")
            if ages:
                fig.add("feed_age_max", t, max(ages.values()))
            stale = by_label(oracle, "dnft_oracle_stale_after_seconds", "feed")
            fig.stale_after_s = min(stale.values(), default=0.0)
            for feed, n in by_label(oracle, "dnft_oracle_publishes_total", "feed").items():
                fig.feed_publishes[feed].append((t, n))

    def _others(self) -> list[tuple[str, int, bool]]:
        """(name, pid, count children) of the servers and of this script itself."""
        out = [(s.name, p.pid, True) for s in self.services_started for p in s.processes]
        return [*out, ("bench script", os.getpid(), False)]

    async def _head(self, http: aiohttp.ClientSession) -> int:
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
        async with http.post(self.anvil.rpc_url, json=body) as response:
            return int((await response.json())["result"], 16)

    def _progress(self) -> str:
        fig = self.figures
        recent = [n for _, ts, n in fig.blocks[-10:]]
        rate = sum(recent) / max(len(recent), 1) / BLOCK_TIME_S
        last = {k: v[-1][1] for k, v in fig.series.items() if v}
        rss = ", ".join(f"{d.name} {d.rss[-1][1]:.0f}" for d in self.daemons if d.rss)
        return (
            f"t={self.now():.0f}s chain ~{rate:.0f} ev/s (last 10 blocks), "
            f"head-checkpoint {last.get('head_minus_checkpoint', math.nan):.0f} blocks, "
            f"planner backlog {last.get('planner_backlog', math.nan):.0f}, "
            f"feed age {last.get('feed_age_max', math.nan):.1f}s | RSS MB: {rss}"
        )

    # --- verdict ----------------------------------------------------------------------------

    def report(self) -> int:
        a, fig = self.args, self.figures
        w, end = a.warmup, self.now()
        rate_target = a.events_per_s
        rows: list[tuple[str, str, str, str, bool]] = []  # criterion, bound, measured, ratio, ok

        window = [(ts, n) for num, ts, n in fig.blocks if w <= fig.block_seen_at[num] <= end]
        chain_rate = block_rate(window, window[0][0], window[-1][0]) if len(window) > 1 else 0.0
        rows.append((
            "chain events/s (logs per block, after warm-up)", f">= {rate_target:g}",
            f"{chain_rate:,.0f}", f"{chain_rate / rate_target:.3f} of target",
            chain_rate >= rate_target,
        ))  # fmt: skip
        try:
            indexed = counter_rate(fig.series["indexer_logs"], w, end)
        except ValueError:
            indexed = 0.0
        ratio = indexed / chain_rate if chain_rate else 0.0
        rows.append((
            "indexer published events/s vs chain events/s", f">= {MIN_INDEXED_RATIO}",
            f"{indexed:,.0f} vs {chain_rate:,.0f}", f"{ratio:.3f}", ratio >= MIN_INDEXED_RATIO,
        ))  # fmt: skip
        feed_rates = {}
        for feed in self.feeds.ids:
            try:
                feed_rates[feed] = counter_rate(fig.feed_publishes.get(feed, []), w, end)
            except ValueError:
                feed_rates[feed] = 0.0
        slowest = min(feed_rates.values())
        rows.append((
            f"slowest of {FEEDS} feeds, publishes/s", f">= {MIN_FEED_HZ}",
            f"{slowest:.2f} (mean {sum(feed_rates.values()) / len(feed_rates):.2f}, "
            f"fastest {max(feed_rates.values()):.2f})",
            f"{slowest * FEED_INTERVAL_S:.2f} of 1 Hz", slowest >= MIN_FEED_HZ,
        ))  # fmt: skip
        for key, what in (("renders", "renders"), ("pushes", "confirmed pushes")):
            later = [v for t, v in fig.series[key] if t >= w]
            done = later[-1] - later[0] if len(later) >= 2 else 0
            rows.append((f"{what} after warm-up", "> 0", f"{done:.0f}", "", done > 0))
        rows.append((
            "API reads answered without 5xx/transport error", "all",
            f"{fig.api_ok} ok, {fig.api_errors} errors", "", fig.api_errors == 0 and fig.api_ok > 0,
        ))  # fmt: skip

        confirmations = 2  # demo_settings' depth
        per_s = rate_target
        lag_specs: list[tuple[str, str, str, float, float]] = [
            ("head_minus_checkpoint", "chain head - indexer checkpoint", "blocks",
             confirmations + 5, 2),
            ("indexer_head_lag", "dnft_indexer_head_lag_blocks", "blocks", confirmations + 5, 2),
            ("planner_backlog", "chain events produced - consumed by the planner", "messages",
             10 * per_s, per_s),
            ("planner_lag_metric", "planner dnft_kafka_consumer_lag_messages (tansu: low)",
             "messages", 10 * per_s, per_s),
            ("render_backlog", "render jobs produced - consumed", "messages",
             3 * BOUND_TOKENS, BOUND_TOKENS),
            ("pusher_backlog", "metadata updates produced - consumed by the pusher", "messages",
             3 * BOUND_TOKENS, BOUND_TOKENS),
            ("pusher_lag_metric", "pusher dnft_kafka_consumer_lag_messages (tansu: low)",
             "messages", 3 * BOUND_TOKENS, BOUND_TOKENS),
            ("pusher_oldest_pending", "pusher oldest pending update", "s", 60, 10),
            ("feed_age_max", "oldest feed value (dnft_oracle_value_age_seconds)", "s",
             3 * FEED_INTERVAL_S, 1),
        ]  # fmt: skip
        verdicts: list[BoundedVerdict] = [
            bounded(label, unit, fig.series[key], warmup_end=w, bound=bound, margin=margin)
            for key, label, unit, bound, margin in lag_specs
        ]
        for v in verdicts:
            rows.append((
                f"lag: {v.name} ({v.unit})",
                f"max <= {v.bound:g}; last third - first third <= {v.margin:g}",
                f"max {v.maximum:.1f}; thirds {v.first_third_mean:.1f} -> {v.last_third_mean:.1f}",
                f"{v.maximum / v.bound:.2f} of bound" if v.bound else "", v.ok,
            ))  # fmt: skip
        growths: list[GrowthVerdict] = []
        for d in self.daemons:
            try:
                g = growth(f"dnft {d.name}", d.rss, warmup_end=w, limit=RSS_LIMIT)
            except ValueError:
                rows.append((f"RSS dnft {d.name}", "", "no sample after warm-up", "", False))
                continue
            growths.append(g)
            rows.append((
                f"RSS {g.name} (MB): max after warm-up / at warm-up",
                f"< {1 + RSS_LIMIT:.2f}",
                f"{g.at_warmup:.0f} -> max {g.maximum_after:.0f}, end {g.last:.0f}",
                f"{g.ratio:.3f} (end {g.end_ratio:.3f})", g.ok,
            ))  # fmt: skip

        print()
        print(
            f"load run: {end:.0f} s, warm-up {w:g} s; sent {fig.sent_events} load events "
            f"({fig.sender_pauses} sender pauses); stale-alert threshold "
            f"{fig.stale_after_s:g} s"
        )
        cores = os.cpu_count() or 0
        print(f"CPU after warm-up, in cores (of {cores}): {self._cpu_text(w, end)}")
        widths = [max(len(str(r[i])) for r in rows) for i in range(4)]
        head = ("criterion", "bound", "measured", "ratio")
        print(" | ".join(h.ljust(wd) for h, wd in zip(head, widths, strict=True)) + " | ok")
        print("-+-".join("-" * wd for wd in widths) + "-+---")
        for r in rows:
            cells = " | ".join(c.ljust(wd) for c, wd in zip(r[:4], widths, strict=True))
            print(f"{cells} | {'yes' if r[4] else 'NO'}")
        print()
        print(f"chain_events_per_s={chain_rate:.0f}")
        print(f"ratio_vs_target={chain_rate / rate_target:.3f}")
        print(f"indexed_vs_chain={ratio:.3f}")
        for g in growths:
            print(f"rss_ratio_{g.name.split()[-1]}={g.ratio:.3f}")
        passed = all(r[4] for r in rows)
        print("PASS" if passed else "FAIL")
        return 0 if passed else 1

    def _cpu_text(self, start: float, end: float) -> str:
        series = {f"dnft {d.name}": d.cpu for d in self.daemons}
        series |= {
            k.removeprefix("cpu:"): v
            for k, v in self.figures.series.items()
            if k.startswith("cpu:")
        }
        parts = []
        for name, samples in series.items():
            with contextlib.suppress(ValueError):
                parts.append(f"{name} {counter_rate(samples, start, end):.2f}")
        return ", ".join(parts)

    # --- stop -------------------------------------------------------------------------------

    async def stop(self, *, keep_logs: bool) -> list[str]:
        """Stop everything started, newest first; returns what survived (empty on success).
        The work directory (logs, data) is removed unless ``keep_logs`` or something survived."""
        self.stop_load.set()
        if self.traffic_task is not None and not self.traffic_task.done():
            # it returns once the transaction in flight is mined
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self.traffic_task), 35)
        for task in self.tasks:
            if not task.done():
                task.cancel()
            with contextlib.suppress(BaseException):
                await task
        left: list[str] = []
        for daemon in reversed(self.daemons):
            if daemon.process is not None:
                survivors = await asyncio.to_thread(daemon.process.terminate, STOP_TIMEOUT_S)
                if survivors:
                    left.append(f"dnft {daemon.name} {survivors}")
        if self.feeds_started:
            await self.feeds.stop()
        for service in reversed(self.services_started):
            try:
                await asyncio.to_thread(
                    service.destroy if isinstance(service, PostgresService) else service.stop
                )
            except Exception as exc:  # report it and go on stopping the rest
                left.append(f"{service.name}: {exc}")
        if keep_logs or left:
            print(f"logs kept in {self.workdir / 'logs'}", flush=True)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return left


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    parser.add_argument(
        "--warmup", type=float, default=None, help="seconds (default 15%% of --duration, >= 10)"
    )
    parser.add_argument("--events-per-s", type=float, default=1000.0)
    args = parser.parse_args(argv)
    if args.warmup is None:
        args.warmup = max(10.0, 0.15 * args.duration)
    if args.duration <= 0 or args.events_per_s <= 0:
        parser.error("--duration and --events-per-s must be > 0")
    if not 0 <= args.warmup < args.duration * 0.8:
        parser.error("--warmup must be >= 0 and leave at least 20% of --duration")
    return args


async def main() -> int:
    args = parse_args()
    run = LoadRun(args)
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    signals = (signal.SIGINT, signal.SIGTERM)
    interrupted = False

    def on_signal() -> None:
        nonlocal interrupted
        if not interrupted:  # a second signal must not interrupt the cleanup
            interrupted = True
            task.cancel()

    for sig in signals:
        loop.add_signal_handler(sig, on_signal)
    code = 1
    try:
        code = await run.execute()
        if code == 0:
            code = run.report()
        else:
            print(f"FAIL: {run.failure}", flush=True)
    except asyncio.CancelledError:
        if not interrupted:
            raise
        task.uncancel()
        print("interrupted: stopping everything", flush=True)
        code = 130
    except Exception as exc:
        print(f"FAIL: {exc}", flush=True)
        code = 1
    finally:
        left = await run.stop(keep_logs=code != 0)
        for sig in signals:
            loop.remove_signal_handler(sig)
    if left:
        print("processes left behind: " + "; ".join(left), flush=True)
        return 1
    print("stopped: nothing left running", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
