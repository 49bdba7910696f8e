"""Leader leases against real Postgres, anvil and tansu: a frozen leader's lock session ends
within its lease, a standby takes over within a stated bound, and the old leader, woken,
steps down before any side effect (no event published twice, no transaction sent).

After the old leader woke and stepped down, the real ``dnft audit`` over everything mined is
clean: every event in Kafka once (no extra, none missing), no pusher transaction unrecorded,
duplicated or missing.

The takeover bound: the frozen leader's session was last busy at most when it froze (the
heartbeat runs every lease / 3), so the server ends it at most ``lease_s`` later
(``idle_session_timeout``); a standby retries the lock every ``retry_s`` (1 s), so it leads
within ``lease_s + retry_s`` of the freeze, plus connecting and scheduling on a loaded
machine (:data:`SLACK_S`).
"""

from __future__ import annotations

import asyncio
import copy
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import orjson
import pytest

from dnft.config import PostgresSettings, settings_from_mapping
from dnft.devservices import AnvilService
from dnft.devservices.ports import free_port
from dnft.kafka import AsyncProducer
from dnft.leader import LeaderLock, LeaseLost
from indexer import NetworkIndexer
from publisher.pusher import PusherRuntime, load_signer
from tests.support.chain import (
    canonical_events,
    chain_stream,
    final_events,
    make_world,
)
from tests.support.cli import run_dnft_in_process, write_config
from tests.support.daemon import DaemonProcess, start_indexer_pair
from tests.support.indexer import IndexerConfigFor, index_to_head
from tests.support.messages import chain_inputs
from tests.support.pushed import announcements, coverage, nonce, outbox_counts, query
from tests.support.pusher import PusherConfigFor, funded_updater, produce_updates
from tests.support.regenerator import configured_planner
from tests.support.wait import wait_for

LEASE_S = 4.0
RETRY_S = 1.0  # LeaderLock's default
SLACK_S = 3.0
TAKEOVER_BOUND_S = LEASE_S + RETRY_S + SLACK_S

T = TypeVar("T")


async def checkpoint(dsn: str) -> int:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        value = await conn.fetchval(
            "select block_number from indexer_checkpoints where network = 'local'"
        )
        return int(value) if value is not None else -1
    finally:
        await conn.close()


def pair(tmp_path: Path, command: str, raw: dict[str, Any]) -> list[DaemonProcess]:
    """Two replicas of ``command`` on the same config (each its own health port and log)."""
    daemons = []
    for name in ("a", "b"):
        port = free_port()
        mine = dict(raw, http={"port": port}, postgres=dict(raw["postgres"], lease_s=LEASE_S))
        config = write_config(tmp_path / f"{command}-{name}.yaml", mine)
        daemons.append(DaemonProcess(command, config, port, tmp_path / f"{command}-{name}.log"))
    return daemons


async def pause_until_replaced(
    leader: DaemonProcess,
    standby: DaemonProcess,
    meanwhile: Callable[[], Awaitable[object]] | None = None,
) -> float:
    """SIGSTOP ``leader``, run ``meanwhile``; seconds until ``standby`` leads (asserted
    within the bound)."""
    assert leader.proc is not None
    leader.proc.send_signal(signal.SIGSTOP)
    paused_at = time.monotonic()
    if meanwhile is not None:
        await meanwhile()
    await standby.metric_reaches("dnft_daemon_leader", lambda v: v == 1, TAKEOVER_BOUND_S + 10)
    took_s = time.monotonic() - paused_at
    assert took_s <= TAKEOVER_BOUND_S, f"takeover took {took_s:.1f} s > {TAKEOVER_BOUND_S} s"
    return took_s


async def wake_and_step_down(
    old: DaemonProcess, meanwhile: Callable[[], Awaitable[object]] | None = None
) -> str:
    """SIGCONT ``old``, run ``meanwhile``; its log from the wake-up once it has exited (it
    must step down)."""
    assert old.proc is not None
    woke_at = len(old.log.read_bytes())
    old.proc.send_signal(signal.SIGCONT)
    if meanwhile is not None:
        await meanwhile()
    code = await asyncio.to_thread(old.proc.wait, 30)
    woke = old.log.read_bytes()[woke_at:].decode(errors="replace")
    assert code != 0, f"the old leader must step down (exit to be restarted): {woke[-2000:]}"
    assert "leader lease lost" in woke, woke[-2000:]
    return woke


async def audit_clean(tmp_path: Path, raw: dict[str, Any], to_block: int) -> dict[str, Any]:
    """The real ``dnft audit`` (in this process, in a thread: it owns its event loop) of
    network ``local`` over blocks 0..``to_block``; asserts it exits 0 and reports clean, and
    returns the JSON report."""
    config = write_config(tmp_path / "audit.yaml", raw)
    args = ["audit", "--network", "local", "--from-block", "0", "--to-block", str(to_block)]
    code, out, err = await asyncio.to_thread(
        run_dnft_in_process, config, *args, "--quiet-s", "0.5", "--json"
    )
    assert code == 0, f"dnft audit found something (exit {code}): {out[-3000:]} {err[-2000:]}"
    report: dict[str, Any] = orjson.loads(out)
    assert report["clean"], out[-3000:]
    return report


class TestLeaseInProcess:
    """The lease itself, two LeaderLocks in one process against the real server."""

    async def test_frozen_leaders_session_ends_and_standby_leads(self, db: str) -> None:
        settings = PostgresSettings(dsn=db, lease_s=3)
        old = LeaderLock(settings, "test", "frozen")
        new = LeaderLock(settings, "test", "frozen", retry_s=0.2)
        assert await old.try_acquire()
        async with old.session() as conn:
            assert await conn.fetchval("show idle_session_timeout") == "3s"
            assert await conn.fetchval("show statement_timeout") == "30s"
        assert not await new.try_acquire(), "one leader at a time"
        # Freeze the old leader as SIGSTOP would: its heartbeat stops, it sends nothing.
        assert old._beat is not None
        old._beat.cancel()
        frozen_at = time.monotonic()
        assert await asyncio.wait_for(new.acquire(), 10)
        took_s = time.monotonic() - frozen_at
        assert took_s <= settings.lease_s + 0.2 + 1.5, f"took {took_s:.1f} s"
        # Never two valid leases: the old one ran out before the server let the lock go.
        assert old.remaining_s() == 0
        with pytest.raises(LeaseLost):
            old.check()
        new.check()
        await old.release()
        await new.release()

    async def test_lost_session_fails_the_write(self, db: str) -> None:
        settings = PostgresSettings(dsn=db, lease_s=3)
        lock = LeaderLock(settings, "test", "killed")
        assert await lock.try_acquire()
        admin = await asyncpg.connect(db, timeout=10)
        try:
            killed = await admin.fetchval(
                "select pg_terminate_backend(pid) from pg_stat_activity "
                "where application_name = 'dnft-test-killed'"
            )
            assert killed
        finally:
            await admin.close()
        with pytest.raises(LeaseLost):
            await asyncio.wait_for(lock.watch(), 5)  # the heartbeat notices
        with pytest.raises(LeaseLost):
            async with lock.session() as conn:
                await conn.execute("select 1")
        await lock.release()


def freeze_once(seconds: float, call: Callable[..., T]) -> Callable[..., T]:
    """``call``, whose first use first blocks the whole process's event loop for ``seconds``:
    a stop-the-world pause (SIGSTOP, a stalled VM) right before a side effect."""
    frozen: list[bool] = []

    def paused(*args: Any, **kwargs: Any) -> T:
        if not frozen:
            frozen.append(True)
            time.sleep(seconds)  # deliberately blocking: nothing else runs, not the heartbeat
        return call(*args, **kwargs)

    return paused


class TestFrozenAtTheWorstMoment:
    """The process freezes between deciding an effect and doing it, for longer than its
    lease: on waking, the fence refuses the effect (the standby may lead by then)."""

    async def test_indexer_does_not_publish(
        self, fresh_anvil: AnvilService, indexer_config_for: IndexerConfigFor
    ) -> None:
        world = await make_world(fresh_anvil.rpc_url, mint_count=3)
        raw = indexer_config_for(world)
        raw["postgres"]["lease_s"] = 3
        settings = settings_from_mapping(raw, {})
        producer = AsyncProducer(settings.kafka)
        await producer.start()
        indexer = NetworkIndexer(settings, "local", producer)
        stopping = asyncio.Event()
        task = asyncio.create_task(indexer.run(stopping))
        try:
            await wait_for("following the head", _state(indexer, "realtime"), 60)
            head = await world.block_number()
            await wait_for("caught up", _indexed(indexer, head), 30)
            # The next block's events are encoded, then the loop freezes past the lease.
            encoder = indexer._encoder
            encoder.encode = freeze_once(4.5, encoder.encode)  # type: ignore[method-assign]
            fed = await world.feed(2)
            with pytest.raises(LeaseLost, match="lease ran out"):
                await asyncio.wait_for(task, 30)
        finally:
            stopping.set()
            if not task.done():
                await asyncio.wait_for(task, 30)
            await producer.close()
        published = {m["event_id"] for m in chain_stream(settings)}
        fed_block = fed["blockHash"].to_0x_hex().lower()
        assert not [e for e in published if fed_block in e], "published after the lease ran out"
        assert f"{world.chain_id}:" in next(iter(published)), "the earlier events are there"

    async def test_pusher_does_not_sign(
        self,
        ticking_anvil: AnvilService,
        pusher_config_for: PusherConfigFor,
        db: str,
    ) -> None:
        world = await make_world(ticking_anvil.rpc_url)
        updater = await funded_updater(world)
        raw = pusher_config_for(world, updater, window_s=0.3)
        raw["postgres"]["lease_s"] = 3
        settings = settings_from_mapping(raw, {})
        runtime = PusherRuntime(settings, load_signer(settings))
        stopping = asyncio.Event()
        task = asyncio.create_task(runtime.run(stopping))
        try:
            await wait_for("pusher running", _state(runtime, "running"), 60)
            (chain,) = runtime.chains
            # Fees are chosen right before the signature: freeze there.
            chain._fees.initial = freeze_once(4.5, chain._fees.initial)  # type: ignore[method-assign]
            produce_updates(settings.kafka, world, [(1, 1)])
            with pytest.raises(LeaseLost, match="lease ran out"):
                await asyncio.wait_for(task, 60)
        finally:
            stopping.set()
            if not task.done():
                await asyncio.wait_for(task, 30)
        assert await query(db, "select hash from pusher_transactions") == [], "signed"
        assert await nonce(world, updater.address, "pending") == 0, "sent"


def _state(runtime: Any, state: str) -> Callable[[], Awaitable[bool]]:
    async def reached() -> bool:
        return bool(runtime.state == state)

    return reached


def _indexed(indexer: NetworkIndexer, block: int) -> Callable[[], Awaitable[bool]]:
    async def reached() -> bool:
        return indexer.indexed_block >= block

    return reached


@pytest.mark.usefixtures("no_dnft_env")  # the audit runs in this process
class TestPausedIndexer:
    """SIGSTOP the leading indexer: the standby takes over within the bound and publishes
    what was mined meanwhile, once; the old leader, woken, publishes nothing and exits."""

    async def test_paused_leader_is_replaced_and_fenced(
        self,
        fresh_anvil: AnvilService,
        indexer_config_for: IndexerConfigFor,
        db: str,
        tmp_path: Path,
    ) -> None:
        world = await make_world(fresh_anvil.rpc_url, mint_count=5)
        raw = indexer_config_for(world, ws_url=fresh_anvil.ws_url)
        leader, standby = pair(tmp_path, "indexer", raw)
        checkpoints: list[int] = []
        try:
            await start_indexer_pair(leader, standby)
            for token in range(1, 4):
                await world.feed(token)
            head = await world.block_number()
            await leader.metric_reaches("dnft_indexer_indexed_block", lambda v: v >= head, 30)
            checkpoints.append(await checkpoint(db))

            async def mine_while_frozen() -> None:  # blocks nobody can publish yet
                for token in range(1, 4):
                    await world.feed(token, amount=5)

            await pause_until_replaced(leader, standby, mine_while_frozen)
            head = await world.block_number()
            await standby.metric_reaches("dnft_indexer_indexed_block", lambda v: v >= head, 30)
            checkpoints.append(await checkpoint(db))

            async def mine_after_waking() -> None:  # blocks a leader that went on would publish
                for token in range(4, 6):
                    await world.feed(token)

            await wake_and_step_down(leader, mine_after_waking)
            head = await world.block_number()
            await standby.metric_reaches("dnft_indexer_indexed_block", lambda v: v >= head, 30)
            checkpoints.append(await checkpoint(db))
            assert standby.alive()
        finally:
            for daemon in (leader, standby):
                daemon.kill9()

        assert checkpoints == sorted(checkpoints), f"checkpoint went back: {checkpoints}"
        expected = await canonical_events(world, head)
        messages = chain_stream(settings_from_mapping(raw, {}))
        assert final_events(messages) == expected, "every event is in Kafka"
        ids = [m["event_id"] for m in messages if not m["removed"]]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        assert not repeated, f"published twice (the woken leader published): {repeated}"
        report = await audit_clean(tmp_path, raw, head)
        assert report["kafka"]["events"] == len(expected) > 0
        assert report["kafka"]["repeats"] == 0


@pytest.mark.usefixtures("no_dnft_env")  # the audit runs in this process
class TestPausedPusher:
    """SIGSTOP the leading pusher: the standby takes over and announces; the old leader,
    woken, signs and sends nothing (the signer's nonce counts only confirmed pushes)."""

    async def test_paused_leader_is_replaced_and_sends_nothing(
        self,
        ticking_anvil: AnvilService,
        pusher_config_for: PusherConfigFor,
        db: str,
        tmp_path: Path,
        unique_topic: Callable[[str], str],
    ) -> None:
        world = await make_world(ticking_anvil.rpc_url)
        updater = await funded_updater(world)
        raw = pusher_config_for(world, updater, window_s=0.3, max_range_size=1)
        kafka = settings_from_mapping(raw, {}).kafka
        leader, standby = pair(tmp_path, "pusher", raw)

        async def confirmed(count: int) -> bool:
            c = await outbox_counts(db)
            return c["updates"] == count and c["confirmed"] == count

        try:
            leader.start()
            await leader.metric_reaches("dnft_daemon_leader", lambda v: v == 1, 60)
            standby.start()
            await standby.metric_reaches("dnft_daemon_leader", lambda v: v == 0, 30)
            produce_updates(kafka, world, [(t, 1) for t in range(1, 4)])
            await wait_for("first updates confirmed", lambda: confirmed(3), 60, every_s=0.3)

            await pause_until_replaced(leader, standby)
            produce_updates(kafka, world, [(t, 1) for t in range(4, 7)])  # for the new leader
            await wait_for("updates after takeover", lambda: confirmed(6), 90, every_s=0.3)

            await wake_and_step_down(leader)
            produce_updates(kafka, world, [(t, 1) for t in range(7, 9)])
            await wait_for("updates after the wake-up", lambda: confirmed(8), 90, every_s=0.3)
            assert standby.alive()
        finally:
            for daemon in (leader, standby):
                daemon.kill9()

        pushes = await query(db, "select mined_hash from pusher_pushes where state = 'confirmed'")
        events = await announcements(world)
        assert len(events) == len(pushes) == 8, "one announcement per update (range size 1)"
        assert await nonce(world, updater.address) == len(pushes), "no other transaction sent"
        assert all(n == 1 for n in coverage(events).values()), "a token announced twice"
        assert set(coverage(events)) == set(range(1, 9))

        # The audit also reconciles the chain with Kafka and the planner's regen_events: no
        # indexer or planner ran beside the pusher, so run them over everything mined first
        # (into a chain-events topic of this test's own), then audit.
        audited = copy.deepcopy(raw)
        audited["kafka"]["topics"]["chain_events"] = unique_topic("chain")
        audited["networks"][0]["confirmations"] = {"depth": 2}
        settings = settings_from_mapping(audited, {})
        head = await index_to_head(settings, world)
        messages = await asyncio.to_thread(chain_stream, settings)
        async with configured_planner(settings, unique_topic("jobs")) as (planner, _, _):
            await planner.apply(chain_inputs(messages))
        report = await audit_clean(tmp_path, audited, head)
        transactions = report["transactions"]
        assert transactions["transactions"] == len(pushes), transactions
        assert report["versions"]["versions"] == 8, report["versions"]
