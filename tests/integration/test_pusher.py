"""`dnft pusher` against real anvil, tansu and Postgres: coalescing, token URIs, a configured
call, redelivery, stuck transactions, reorgs, updates refused unless Postgres holds their
version, and the signer key kept out of the logs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import pytest
import structlog

from dnft import metrics
from dnft.config import KafkaSettings, settings_from_mapping
from dnft.devservices import AnvilService
from publisher.pusher import PusherRuntime
from tests.support.chain import World, make_world
from tests.support.pushed import (
    announcements,
    coverage,
    nonce,
    outbox_counts,
    query,
    refused,
    wait_confirmed,
)
from tests.support.pusher import (
    TEST_COLLECTION,
    PusherConfigFor,
    Updater,
    cid_of,
    funded_updater,
    produce_unrecorded,
    produce_updates,
    record_versions,
    running_pusher,
    update_message,
)
from tests.support.wait import wait_for


@dataclass
class Running:
    world: World
    updater: Updater
    runtime: PusherRuntime
    dsn: str
    kafka: KafkaSettings
    events: list[MutableMapping[str, Any]]

    def produce(self, updates: list[tuple[int, int]]) -> int:
        return produce_updates(self.kafka, self.world, updates)

    async def confirmed(self, count: int, timeout_s: float = 30.0) -> None:
        await wait_confirmed(self.dsn, count, timeout_s)


StartPusher = Callable[..., Any]


@pytest.fixture
async def start_pusher(pusher_config_for: PusherConfigFor) -> AsyncIterator[StartPusher]:
    """Start an in-process pusher for a world (its logs captured); stopped (SIGTERM path)
    after the test, whatever its run ended with."""
    with contextlib.suppress(Exception):
        async with contextlib.AsyncExitStack() as stack:

            async def start(world: World, **pusher: Any) -> Running:
                updater = await funded_updater(world)
                settings = settings_from_mapping(pusher_config_for(world, updater, **pusher), {})
                events = stack.enter_context(structlog.testing.capture_logs())
                runtime = await stack.enter_async_context(running_pusher(settings))
                dsn = settings.postgres.dsn
                return Running(world, updater, runtime, dsn, settings.kafka, events)

            yield start


def _async(predicate: Callable[[], bool]) -> Callable[[], Any]:
    async def check() -> bool:
        return predicate()

    return check


def assert_key_absent(running: Running) -> None:
    text = repr(running.events)
    assert running.updater.key_hex not in text.lower()
    assert running.updater.address in text  # the logs did talk about the signer


async def receipt(world: World, tx_hash: str) -> Any:
    return (await world.rpc("eth_getTransactionReceipt", [tx_hash]))["result"]


class TestCoalescing:
    """1,000 updates in one window become a handful of range transactions covering each once."""

    async def test_thousand_updates_few_transactions(
        self, ticking_anvil: AnvilService, start_pusher: StartPusher
    ) -> None:
        world = await make_world(ticking_anvil.rpc_url)
        running = await start_pusher(world, window_s=2.0, max_range_size=400)
        tokens = list(range(1, 1001))
        assert running.produce([(t, 1) for t in tokens]) == 1000
        await running.confirmed(1000)

        events = await announcements(world)
        assert len(events) <= 5, events
        covered = coverage(events)
        assert all(covered[t] == 1 for t in tokens), "every token announced exactly once"
        assert set(covered) == set(tokens)
        sent = await nonce(world, running.updater.address)
        assert sent == len({h for h, _, _ in events}) <= 5
        assert metrics.registry.get_sample_value("dnft_pusher_pending_updates") is not None

        # The same 1,000 messages again (a redelivery): recorded as duplicates, nothing sent.
        intake = running.runtime.intake
        assert intake is not None
        seen = intake.seen
        running.produce([(t, 1) for t in tokens])
        await wait_for("redelivery consumed", _async(lambda: intake.seen >= seen + 1000), 30)
        await asyncio.sleep(1.5)  # past the window: a push would be planned by now
        counts = await outbox_counts(running.dsn)
        assert counts["updates"] == 1000
        assert counts["pushes"] == len(events)
        assert await nonce(world, running.updater.address) == sent
        assert await announcements(world) == events
        assert_key_absent(running)

    async def test_rate_cap_limits_new_transactions(
        self, ticking_anvil: AnvilService, start_pusher: StartPusher
    ) -> None:
        world = await make_world(ticking_anvil.rpc_url)
        running = await start_pusher(
            world, window_s=0.2, max_range_size=10, max_transactions_per_minute=3
        )
        running.produce([(t, 1) for t in range(1, 101)])  # 10 ranges of 10
        await running.confirmed(30)
        await asyncio.sleep(2.0)
        counts = await outbox_counts(running.dsn)
        assert counts["pushes"] == 3
        assert counts["confirmed"] == 30
        pending = metrics.registry.get_sample_value("dnft_pusher_pending_updates")
        assert pending == 70


class TestTokenUriMode:
    """token-uri mode stores each token's newest ipfs:// URI with batched setTokenURIs."""

    async def test_sets_uris(self, ticking_anvil: AnvilService, start_pusher: StartPusher) -> None:
        world = await make_world(ticking_anvil.rpc_url, mint_count=12)
        running = await start_pusher(
            world, mode="token-uri", window_s=1.0, max_uris_per_transaction=5
        )
        updates = [(t, 1) for t in range(1, 13)] + [(3, 2), (7, 2)]
        running.produce(updates)
        await running.confirmed(len(updates))
        for token in range(1, 13):
            version = 2 if token in (3, 7) else 1
            uri = await world.collection.functions.tokenURI(token).call()
            assert uri == f"ipfs://{cid_of(token, version)}"
        pushes = await query(running.dsn, "select token_count from pusher_pushes order by id")
        assert [p["token_count"] for p in pushes] == [5, 5, 2]
        covered = coverage(await announcements(world))
        assert all(covered[t] == 1 for t in range(1, 13))
        assert_key_absent(running)


class TestConfiguredCall:
    """The call is configuration: the sample contract's own setTokenURI(uint256,string), set
    with ``mode: call`` and ``args: id_uri``, stores each token's newest URI (built from a
    template using every placeholder) in a transaction per token, and the outbox confirms."""

    async def test_set_token_uri_per_token(
        self, ticking_anvil: AnvilService, start_pusher: StartPusher
    ) -> None:
        world = await make_world(ticking_anvil.rpc_url, mint_count=4)
        template = "ipfs://{cid}/v{version}/{token_id}.json"
        collection = {
            "contract": "collection",
            "mode": "call",
            "function": "setTokenURI(uint256, string)",
            "args": "id_uri",
            "uri_template": template,
        }
        running = await start_pusher(world, window_s=1.0, collections=[collection])
        updates = [(1, 1), (2, 1), (2, 2), (4, 1)]
        running.produce(updates)
        await running.confirmed(len(updates))

        for token, version in ((1, 1), (2, 2), (4, 1)):
            uri = await world.collection.functions.tokenURI(token).call()
            assert uri == f"ipfs://{cid_of(token, version)}/v{version}/{token}.json"
        pushes = await query(
            running.dsn,
            "select mode, state, first_token, last_token, token_count from pusher_pushes",
        )
        assert {p["mode"] for p in pushes} == {"token-uri"}  # a URI-writing call
        assert {p["state"] for p in pushes} == {"confirmed"}
        assert all(p["first_token"] == p["last_token"] and p["token_count"] == 1 for p in pushes)
        assert {int(p["first_token"]) for p in pushes} == {1, 2, 4}
        assert await nonce(world, running.updater.address) == len(pushes)
        assert set(coverage(await announcements(world))) == {1, 2, 4}  # MetadataUpdate each
        confirmed = [e for e in running.events if e["event"] == "push confirmed"]
        assert len(confirmed) == len(pushes)
        assert all(e["events"] >= 1 for e in confirmed)
        assert_key_absent(running)


class TestStuckTransaction:
    """A transaction that stays pending is replaced with bumped fees; exactly one is mined."""

    async def test_replaced_and_one_mined(
        self, fresh_anvil: AnvilService, start_pusher: StartPusher
    ) -> None:
        world = await make_world(fresh_anvil.rpc_url)
        running = await start_pusher(world, replace_after_s=1.0, confirmations=1)
        await world.rpc("evm_setAutomine", [False])  # nothing is mined until the test says
        replaced = metrics.registry.get_sample_value(
            "dnft_pusher_transactions_total", {"outcome": "replaced"}
        )
        running.produce([(5, 1)])

        async def two_signed() -> list[Any]:
            rows = await query(
                running.dsn,
                "select hash, max_fee_per_gas, max_priority_fee_per_gas, broadcast_at "
                "from pusher_transactions order by signed_at",
            )
            return rows if len(rows) >= 2 and rows[1]["broadcast_at"] else []

        first, second = (await wait_for("a replacement", two_signed, 20))[:2]
        assert second["max_fee_per_gas"] * 100 >= first["max_fee_per_gas"] * 110
        assert second["max_priority_fee_per_gas"] * 100 >= first["max_priority_fee_per_gas"] * 110
        assert (
            metrics.registry.get_sample_value(
                "dnft_pusher_transactions_total", {"outcome": "replaced"}
            )
            or 0
        ) > (replaced or 0)
        await world.rpc("evm_setAutomine", [True])
        await world.rpc("evm_mine", [])
        await running.confirmed(1)

        txs = await query(running.dsn, "select hash from pusher_transactions")
        mined = [t["hash"] for t in txs if await receipt(world, t["hash"])]
        assert len(mined) == 1
        assert await nonce(world, running.updater.address) == 1
        events = await announcements(world)
        assert [(f, la) for _, f, la in events] == [(5, 5)]
        assert events[0][0] == mined[0]
        assert_key_absent(running)


class TestReorg:
    """A confirmed-to-be push dropped by a reorg is sent again with the same signed bytes."""

    async def test_resent_after_rollback(
        self, fresh_anvil: AnvilService, start_pusher: StartPusher
    ) -> None:
        world = await make_world(fresh_anvil.rpc_url)
        running = await start_pusher(world, confirmations=3)
        await world.rpc("evm_setAutomine", [False])
        running.produce([(9, 1), (10, 1)])

        async def broadcast() -> list[Any]:
            return await query(
                running.dsn,
                "select hash from pusher_transactions where broadcast_at is not null",
            )

        (tx,) = await wait_for("the push broadcast", broadcast, 20)
        await world.rpc("evm_mine", [])

        async def mined() -> list[Any]:
            return await query(
                running.dsn, "select mined_block_hash from pusher_pushes where state = 'mined'"
            )

        (before,) = await wait_for("the push mined", mined, 10)
        assert len(await announcements(world)) == 1
        await world.rpc("anvil_rollback", [1])  # the block holding the push is gone
        assert await announcements(world) == []
        assert await receipt(world, tx["hash"]) is None

        async def mine_until_confirmed() -> bool:
            await world.rpc("evm_mine", [])
            c = await outbox_counts(running.dsn)
            return c["confirmed"] == 2

        await wait_for("the push confirmed again", mine_until_confirmed, 20, every_s=0.3)
        (push,) = await query(running.dsn, "select mined_hash, mined_block_hash from pusher_pushes")
        assert push["mined_hash"] == tx["hash"]  # the same signed transaction, not a new one
        assert push["mined_block_hash"] != before["mined_block_hash"]
        assert (await outbox_counts(running.dsn))["txs"] == 1
        events = await announcements(world)
        assert [(h, f, la) for h, f, la in events] == [(tx["hash"], 9, 10)]
        assert any(e["event"] == "push reorged out; sending it again" for e in running.events)
        assert_key_absent(running)


class TestTrust:
    """Whoever reaches Kafka does not choose what the pusher signs: an update is recorded only
    when token_versions holds its version, for a collection bound to its contract, with its
    metadata CID; the others are refused, counted, acknowledged, and nothing is signed."""

    async def test_unrecorded_updates_refused_nothing_signed(
        self, ticking_anvil: AnvilService, start_pusher: StartPusher
    ) -> None:
        world = await make_world(ticking_anvil.rpc_url)
        running = await start_pusher(world)
        intake = running.runtime.intake
        assert intake is not None
        before = {r: refused(r) for r in ("unknown_version", "cid_mismatch")}
        record_versions(running.dsn, [(8, 1)], TEST_COLLECTION)
        record_versions(running.dsn, [(9, 1)], "other")  # a collection not bound to it
        forged = [
            update_message(world, 7, 1),  # no version of token 7 at all
            {**update_message(world, 8, 1), "metadata_cid": cid_of(8, 99)},  # another CID
            update_message(world, 8, 2),  # version 2 of token 8 was never rendered
            update_message(world, 9, 1),  # recorded, but for another collection
        ]
        assert produce_unrecorded(running.kafka, forged) == 4
        await wait_for("the forged updates consumed", _async(lambda: intake.seen >= 4), 30)
        await asyncio.sleep(1.5)  # past the window: a push would be planned by now
        assert intake.refused == 4
        assert intake.recorded == 0
        assert {r: refused(r) - n for r, n in before.items()} == {
            "unknown_version": 3,
            "cid_mismatch": 1,
        }
        counts = await outbox_counts(running.dsn)
        assert (counts["updates"], counts["pushes"], counts["txs"]) == (0, 0, 0)
        assert await nonce(world, running.updater.address, "pending") == 0  # nothing signed
        logged = [e for e in running.events if e["event"].startswith("metadata update refused")]
        assert sorted((e["token_id"], e["version"], e["reason"]) for e in logged) == [
            ("7", 1, "unknown_version"),
            ("8", 1, "cid_mismatch"),
            ("8", 2, "unknown_version"),
            ("9", 1, "unknown_version"),
        ]

        # The refused messages were acknowledged; a real update behind them is sent.
        running.produce([(8, 1)])
        await running.confirmed(1)
        assert coverage(await announcements(world)) == {8: 1}
        assert await nonce(world, running.updater.address) == 1
        (row,) = await query(running.dsn, "select token_id, metadata_cid from pusher_updates")
        assert (int(row["token_id"]), row["metadata_cid"]) == (8, cid_of(8, 1))
