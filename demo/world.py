"""``dnft demo``: start everything, run the simulated world, watch art evolve, stop cleanly.

Order: the dev services (anvil mining a block every ``block_time_s``, tansu, Postgres) ->
migrations -> the sample contracts with ``tokens`` minted over ``holders`` accounts -> an
UPDATER_ROLE key for the pusher -> the price replay server -> ``dnft run --all`` (every daemon,
one process of its own session) -> the holders' traffic. Interactive, it prints the gallery
URL and a status line until Ctrl-C; headless, it runs ``duration_s`` and then checks that
every token has a version after its first and that ``dnft audit`` over the demo's blocks is
clean. Whatever happens, everything it started is stopped, and it says so only once no
process of it is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import asyncpg
import yaml

from demo.checks import check_audit, check_evolved, version_counts
from demo.config import (
    Endpoints,
    Renderer,
    demo_collection,
    demo_settings,
)
from demo.feed_server import FeedServer
from demo.leftovers import DAEMONS_STOP_S, clear_leftovers, forget_run_record, save_run_record
from demo.prices import DEFAULT_SERIES, Replay, load_series
from demo.traffic import Traffic
from dnft.devservices import (
    ManagedProcess,
    free_port,
    port_is_free,
)
from dnft.devservices import down as services_down
from dnft.devservices import up as services_up
from dnft.devservices.base import tail_log
from dnft.devservices.process import spawn
from dnft.errors import ConfigError, ServiceError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
# The pusher signs with anvil dev account 9 (a public test key): accounts 0 to `holders`-1
# send the holders' transactions, and one key per signer keeps their nonces apart.
PUSHER_ACCOUNT = 9
PREFERRED_API_PORT = 8000
READY_TIMEOUT_S = 90.0


@dataclass(frozen=True, slots=True)
class DemoOptions:
    state_dir: Path
    headless: bool = False
    duration_s: float = 60.0  # headless only
    renderer: Renderer = "procedural"
    model_dir: Path | None = None
    image_size: int = 512
    tokens: int = 20
    holders: int = 4
    day_s: float = 0.25  # replay speed: seconds per day of prices
    tx_every_s: float = 0.4  # pause between two holder transactions
    block_time_s: float = 0.5
    status_every_s: float = 5.0
    seed: int = 9
    api_port: int | None = None  # None: 8000 when free, else any free port
    series: Path = DEFAULT_SERIES

    def check(self) -> None:
        """Raises ConfigError naming the option that is out of range."""
        if self.tokens < 1:
            raise ConfigError("--tokens", f"must be >= 1, got {self.tokens}")
        if not 1 <= self.holders <= PUSHER_ACCOUNT:
            raise ConfigError("--holders", f"must be 1..{PUSHER_ACCOUNT}, got {self.holders}")
        if self.headless and self.duration_s <= 0:
            raise ConfigError("--duration", f"must be > 0, got {self.duration_s}")
        if self.day_s <= 0:
            raise ConfigError("--day-seconds", f"must be > 0, got {self.day_s}")
        if self.renderer == "diffusion":
            if self.model_dir is None:
                raise ConfigError("--model-dir", "the diffusion renderer needs a model directory")
            if not self.model_dir.is_dir():
                raise ConfigError("--model-dir", f"{self.model_dir} is not a directory")
        elif self.model_dir is not None:
            raise ConfigError("--model-dir", "only used with --renderer diffusion")
        demo_collection(
            renderer=self.renderer, model_dir=self.model_dir, image_size=self.image_size
        )


class Console:
    """What the demo tells the person running it (plain lines: works in CI logs too)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        self.out.write(f"[demo {time.monotonic() - self.started:5.1f}s] {text}\n")
        self.out.flush()


class DemoFailed(ServiceError):
    """The demo could not start or a part of it died."""


async def run_demo(options: DemoOptions, out: TextIO = sys.stdout) -> int:
    """Run the demo until Ctrl-C (interactive) or for ``duration_s`` (headless).

    Returns the exit code: 0 on a clean interactive stop or a passing headless check, 1 when
    a check failed or a part died, 130 when a headless run was interrupted. Raises
    ConfigError for bad options and DemoFailed when something could not start; in every case
    everything started has been stopped first.
    """
    options.check()
    console = Console(out)
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupted.set)
    world = _World(options, console)
    try:
        await world.start(interrupted)
        if interrupted.is_set():
            return EXIT_INTERRUPTED if options.headless else EXIT_OK
        if options.headless:
            return await world.run_headless(interrupted)
        return await world.run_interactive(interrupted)
    finally:
        await world.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


class _World:
    """Everything the demo started, so one ``stop`` can undo it in reverse order."""

    def __init__(self, options: DemoOptions, console: Console) -> None:
        self.options = options
        self.console = console
        self.state_dir = options.state_dir.absolute()
        self.services_started = False
        self.feed: FeedServer | None = None
        self.daemons: ManagedProcess | None = None
        self.traffic: Traffic | None = None
        self.traffic_task: asyncio.Task[None] | None = None
        self.traffic_stop = asyncio.Event()
        self.settings_file = self.state_dir / "dnft.yaml"
        self.daemons_log = self.state_dir / "logs" / "dnft-run.log"
        self.endpoints: Endpoints | None = None
        self.deploy: dict[str, Any] = {}
        self.collection = ""

    # --- start ---------------------------------------------------------------------------

    async def start(self, interrupted: asyncio.Event) -> None:
        o, say = self.options, self.console.say
        await asyncio.to_thread(clear_leftovers, self.state_dir, say)
        shutil.rmtree(self.state_dir / "blobs", ignore_errors=True)
        series = load_series(o.series)
        say(
            f"price series: {o.series.name}, {len(series)} days from {series[0].day} "
            f"({o.day_s:g} s per day)"
        )
        say("starting anvil, tansu (Kafka) and Postgres ...")
        self.services_started = True
        state, _ = await asyncio.to_thread(services_up, self.state_dir, block_time=o.block_time_s)
        anvil, tansu, postgres = (state.service(n) for n in ("anvil", "tansu", "postgres"))
        assert anvil is not None
        assert tansu is not None
        assert postgres is not None
        rpc_url = str(anvil.endpoints["rpc_url"])
        dsn = str(postgres.endpoints["dsn"])
        say(f"services up: anvil {rpc_url}, kafka {tansu.endpoints['bootstrap']}")
        if interrupted.is_set():
            return

        from dnft.migrations import apply_migrations
        from dnft.sample import deploy_sample

        await apply_migrations(dsn)
        self.deploy = await deploy_sample(rpc_url, mint=o.tokens, holders=o.holders)
        address = self.deploy["contracts"]["DynamicCollection"]
        say(
            f"deployed the sample collection at {address}, minted {o.tokens} tokens "
            f"to {o.holders} holders"
        )
        api_port = o.api_port or (
            PREFERRED_API_PORT if port_is_free(PREFERRED_API_PORT) else free_port()
        )
        key_file = await grant_pusher(rpc_url, address, api_port, self.state_dir / "pusher.key")
        if interrupted.is_set():
            return

        self.feed = FeedServer(Replay(series, o.day_s))
        await self.feed.start()
        self.endpoints = Endpoints(
            rpc_url=rpc_url,
            ws_url=str(anvil.endpoints["ws_url"]),
            chain_id=int(self.deploy["chain_id"]),
            kafka=str(tansu.endpoints["bootstrap"]),
            dsn=dsn,
            feed_url=self.feed.url,
            api_port=api_port,
            health_port=free_port(),
        )
        collection = demo_collection(
            renderer=o.renderer, model_dir=o.model_dir, image_size=o.image_size
        )
        self.collection = str(collection["name"])
        collection_file = self.state_dir / "collection.yaml"
        collection_file.write_text(yaml.safe_dump(collection, sort_keys=False))
        settings = demo_settings(
            self.endpoints,
            collection_file=collection_file,
            address=address,
            start_block=int(self.deploy["deploy_block"]),
            blobs=self.state_dir / "blobs",
            signer_key_file=key_file,
            feed_interval_s=max(o.day_s * 2, 0.25),
        )
        self.settings_file.write_text(yaml.safe_dump(settings, sort_keys=False))

        say("starting indexer, oracle, regenerator, api and pusher (dnft run --all) ...")
        self.daemons = spawn(
            "dnft-run",
            [sys.executable, "-m", "dnft", "--config", str(self.settings_file), "run", "--all"],
            self.daemons_log,
        )
        save_run_record(self.state_dir, self.daemons)
        await self._wait_ready(interrupted)
        if interrupted.is_set():
            return
        self.feed.begin()
        owners = token_owners(self.deploy)
        self.traffic = Traffic(rpc_url, address, owners, every_s=o.tx_every_s, seed=o.seed)
        self.traffic_task = asyncio.create_task(self.traffic.run(self.traffic_stop))
        say(f"gallery: http://127.0.0.1:{api_port}/   (config {self.settings_file})")
        say(f"daemon logs: {self.daemons_log}")

    async def _wait_ready(self, interrupted: asyncio.Event) -> None:
        """Until /readyz of ``dnft run --all`` answers 200. Raises DemoFailed when the process
        dies or does not get ready in time."""
        assert self.daemons is not None
        assert self.endpoints is not None
        url = f"http://127.0.0.1:{self.endpoints.health_port}/readyz"
        deadline = time.monotonic() + READY_TIMEOUT_S
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while not interrupted.is_set():
                if not self.daemons.alive():
                    raise DemoFailed(self._died("dnft run --all exited while starting"))
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(url) as response:
                        if response.status == 200:
                            return
                if time.monotonic() > deadline:
                    raise DemoFailed(
                        self._died(f"dnft run --all not ready after {READY_TIMEOUT_S:g} s")
                    )
                await asyncio.sleep(0.25)

    def _died(self, what: str) -> str:
        return f"{what}; log {self.daemons_log}, last lines:\n{tail_log(self.daemons_log)}"

    # --- run -----------------------------------------------------------------------------

    async def run_interactive(self, interrupted: asyncio.Event) -> int:
        self.console.say("art evolves as prices move and holders feed their tokens; Ctrl-C stops")
        return await self._watch(interrupted, until=None)

    async def run_headless(self, interrupted: asyncio.Event) -> int:
        o, say = self.options, self.console.say
        code = await self._watch(interrupted, until=time.monotonic() + o.duration_s)
        if code != EXIT_OK:
            return code
        if interrupted.is_set():
            return EXIT_INTERRUPTED
        self.traffic_stop.set()
        if self.traffic_task is not None:
            await self.traffic_task
        assert self.traffic is not None
        last_block = self.traffic.stats.last_block or int(self.deploy["head_block"])
        say(f"world stopped at block {last_block}; waiting for the pipeline to settle ...")
        assert self.endpoints is not None
        dsn = self.endpoints.dsn
        evolved_ok = await check_evolved(dsn, self.collection, o.tokens, say, interrupted)
        from_block = int(self.deploy["deploy_block"])
        audit_ok = await check_audit(
            self.settings_file, dsn, from_block, last_block, say, interrupted
        )
        if interrupted.is_set():
            return EXIT_INTERRUPTED
        if evolved_ok and audit_ok:
            say("PASS: every token evolved and the audit is clean")
            return EXIT_OK
        say("FAIL: " + ", ".join(
            what for what, ok in (("not every token evolved", evolved_ok),
                                  ("the audit is not clean", audit_ok)) if not ok
        ))  # fmt: skip
        return EXIT_FAILED

    async def _watch(self, interrupted: asyncio.Event, until: float | None) -> int:
        """Print a status line every ``status_every_s`` until interrupted or ``until``;
        1 when the daemons or the traffic died meanwhile."""
        assert self.endpoints is not None
        assert self.daemons is not None
        conn = await asyncpg.connect(self.endpoints.dsn, timeout=10)
        try:
            while not interrupted.is_set():
                if not self.daemons.alive():
                    self.console.say(self._died("dnft run --all stopped unexpectedly"))
                    return EXIT_FAILED
                if self.traffic_task is not None and self.traffic_task.done():
                    error = self.traffic_task.exception()
                    self.console.say(f"the holders' traffic stopped: {error!r}")
                    return EXIT_FAILED
                self.console.say(await self._status_line(conn))
                wait = self.options.status_every_s
                if until is not None:
                    wait = min(wait, until - time.monotonic())
                    if wait <= 0:
                        return EXIT_OK
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(interrupted.wait(), wait)
        finally:
            await conn.close()
        return EXIT_OK

    async def _status_line(self, conn: asyncpg.Connection) -> str:
        assert self.feed is not None
        assert self.traffic is not None
        day = self.feed.current()
        counts = await version_counts(conn, self.collection)
        evolved = sum(1 for n in counts.values() if n >= 2)
        stages = await conn.fetch(
            "select state->>'stage' as stage, count(*) as n from regen_tokens "
            "where collection = $1 group by 1 order by 2 desc",
            self.collection,
        )
        stats = self.traffic.stats
        return (
            f"ETH/USD {day.day} ${day.close:>8} | txs: {stats.fed} fed, {stats.traits} moods"
            f" | versions {sum(counts.values())}, evolved {evolved}/{self.options.tokens}"
            f" | {_stages_text(stages)}"
        )

    # --- stop ----------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop everything started, newest first; raises DemoFailed naming what survived."""
        say = self.console.say
        say("stopping ...")
        self.traffic_stop.set()
        if self.traffic_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.traffic_task, 35)
        left: list[str] = []
        if self.daemons is not None:
            survivors = await asyncio.to_thread(self.daemons.terminate, DAEMONS_STOP_S)
            if survivors:
                left.append(f"dnft run --all {survivors}")
            forget_run_record(self.state_dir)
        if self.feed is not None:
            await self.feed.stop()
        if self.services_started:
            try:
                await asyncio.to_thread(services_down, self.state_dir)
            except ServiceError as exc:
                left.append(str(exc))
        if left:
            raise DemoFailed("processes left behind: " + "; ".join(left))
        if self.services_started:
            say(f"stopped: no process left (logs kept in {self.state_dir / 'logs'})")


async def grant_pusher(rpc_url: str, address: str, api_port: int, key_file: Path) -> Path:
    """Grant UPDATER_ROLE to the pusher's dev account (``PUSHER_ACCOUNT``) and point the
    collection's base URI at the API on ``api_port``; write the key to ``key_file`` (mode
    0600) and return it. Waits for both transactions."""
    from eth_utils.crypto import keccak
    from web3 import AsyncHTTPProvider, AsyncWeb3

    from dnft.contracts import DevSigner, anvil_dev_key, at, transact

    pusher_key = await asyncio.to_thread(anvil_dev_key, PUSHER_ACCOUNT)
    w3 = AsyncWeb3(AsyncHTTPProvider(rpc_url))
    try:
        admin = DevSigner()
        collection = at(w3, "DynamicCollection", address)
        pusher = DevSigner(pusher_key).address
        await transact(
            w3, collection, "grantRole", keccak(text="UPDATER_ROLE"), pusher, sender=admin
        )
        base_uri = f"http://127.0.0.1:{api_port}/tokens/"
        await transact(w3, collection, "setBaseURI", base_uri, sender=admin)
    finally:
        await w3.provider.disconnect()
    await asyncio.to_thread(_write_key, key_file, pusher_key)
    return key_file


def _write_key(key_file: Path, key: str) -> None:
    key_file.touch(mode=0o600)
    key_file.write_text(key.removeprefix("0x") + "\n")


def _stages_text(rows: list[asyncpg.Record]) -> str:
    return ", ".join(f"{r['stage']} {r['n']}" for r in rows) or "no token state yet"


def token_owners(deploy: dict[str, Any]) -> dict[int, int]:
    """Token id -> dev account index of its holder, from deploy_sample's report."""
    index = {holder.lower(): i for i, holder in enumerate(deploy["holders"])}
    return {
        token: index[m["holder"].lower()]
        for m in deploy["mints"]
        for token in range(int(m["first"]), int(m["last"]) + 1)
    }


def default_state_dir() -> Path:
    return Path(os.environ.get("DNFT_DEMO_STATE_DIR", ".dnft/demo"))
