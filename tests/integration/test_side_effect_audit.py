"""`dnft audit`'s side-effect checks against real anvil, tansu and Postgres: a real pusher's
transactions audit clean; a second transaction sent by its key, a push mined twice, a
confirmed push the chain lacks, and token versions stored twice or with a gap are reported."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import orjson
import pytest
from eth_account import Account

from audit import audit_versions
from dnft.config import Settings, settings_from_mapping
from dnft.devservices import AnvilService
from dnft.kafka import AsyncProducer
from dnft.migrations import apply_migrations
from regenerator.planner import Planner
from tests.support.chain import World, chain_stream, make_world
from tests.support.cli import run_dnft_in_process, write_config
from tests.support.indexer import IndexerConfigFor, index_to_head
from tests.support.messages import chain_inputs
from tests.support.pushed import announcements, nonce, query, wait_confirmed
from tests.support.pusher import (
    PusherConfigFor,
    Updater,
    funded_updater,
    produce_updates,
    running_pusher,
)
from tests.support.regenerator import configured_planner

pytestmark = pytest.mark.usefixtures("no_dnft_env")
SAMPLE_COLLECTION = Path("collections/sample.yaml").resolve()
TOKENS = 6


@dataclass
class Pushed:
    """A chain whose updates a real pusher announced, indexed and planned into Postgres."""

    world: World
    updater: Updater
    settings: Settings
    config: Path
    pool: asyncpg.Pool
    producer: AsyncProducer
    planner: Planner

    @property
    def dsn(self) -> str:
        return self.settings.postgres.dsn

    async def index_to_head(self) -> int:
        """Index the chain to its current head and apply the topic to the planner (events
        already applied are no-ops); returns that head."""
        head = await index_to_head(self.settings, self.world)
        messages = await asyncio.to_thread(chain_stream, self.settings)
        await self.planner.apply(chain_inputs(messages))
        return head

    async def audit(self, to_block: int, *, json: bool = True) -> tuple[int, str, str]:
        """The real CLI, in a thread (it owns its event loop): (exit code, out, err)."""
        args = ["audit", "--network", "local", "--from-block", "0", "--to-block", str(to_block)]
        args += ["--quiet-s", "0.5", *(["--json"] if json else [])]
        return await asyncio.to_thread(run_dnft_in_process, self.config, *args)


@pytest.fixture
async def pushed(
    ticking_anvil: AnvilService,
    indexer_config_for: IndexerConfigFor,
    pusher_config_for: PusherConfigFor,
    tmp_path: Path,
    unique_topic: Callable[[str], str],
) -> AsyncIterator[Pushed]:
    world = await make_world(ticking_anvil.rpc_url, mint_count=TOKENS)
    updater = await funded_updater(world)
    raw = indexer_config_for(world)
    pusher = pusher_config_for(world, updater, max_range_size=2)
    raw["kafka"]["topics"].update(pusher["kafka"]["topics"])
    raw["pusher"] = pusher["pusher"]
    raw["collections"] = [{"file": str(SAMPLE_COLLECTION)}]
    config = write_config(tmp_path / "dnft.yaml", raw)
    settings = settings_from_mapping(raw, {})

    # A real pusher announces versions 1 of every token (ranges of at most 2: 3 pushes).
    async with running_pusher(settings):
        updates = [(t, 1) for t in range(1, TOKENS + 1)]
        produce_updates(settings.kafka, world, updates, collection="sample")
        await wait_confirmed(settings.postgres.dsn, TOKENS, 60)  # TOKENS updates: all of them
    # The versions the pusher needed to trust those updates; the tests write their own.
    await query(settings.postgres.dsn, "delete from token_versions")

    async with configured_planner(settings, unique_topic("jobs")) as (planner, pool, producer):
        yield Pushed(world, updater, settings, config, pool, producer, planner)


async def insert_version(
    conn: asyncpg.Connection, collection: str, token_id: int, version: int, state_hash: str
) -> None:
    """A token_versions row as the render worker writes one (content fields made up)."""
    sha = hashlib.sha256(f"{collection}:{token_id}:{version}".encode()).hexdigest()
    await conn.execute(
        "insert into token_versions (collection, token_id, version, state_hash, state, "
        "image_sha256, image_cid, metadata_sha256, metadata_cid, metadata, triggered_by) "
        "values ($1, $2, $3, $4, '{}'::jsonb, $5, $6, $5, $6, '{}'::jsonb, '[]'::jsonb)",
        collection,
        token_id,
        version,
        state_hash,
        sha,
        f"b{sha[:40]}",
    )


async def resend(p: Pushed, calldata: bytes) -> str:
    """The pusher's key sends ``calldata`` again with its next nonce, behind the outbox's back
    (what a crash between broadcast and recording would leave); returns the mined hash."""
    w3 = p.world.w3
    signed = Account.sign_transaction(
        {
            "type": 2,
            "chainId": p.world.chain_id,
            "nonce": await nonce(p.world, p.updater.address, "pending"),
            "to": p.world.address,
            "data": calldata,
            "value": 0,
            "gas": 200_000,
            "maxFeePerGas": 100 * 10**9,
            "maxPriorityFeePerGas": 10**9,
        },
        bytes.fromhex(p.updater.key_hex),
    )
    tx_hash = await w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = await w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    assert receipt["status"] == 1
    return "0x" + bytes(tx_hash).hex()


class TestCleanPusher:
    """Every announcement of a real pusher run is one confirmed push's transaction: clean."""

    async def test_clean(self, pushed: Pushed) -> None:
        async with pushed.pool.acquire() as conn:
            for token in (1, 2, 3):
                for version in (1, 2):
                    await insert_version(conn, "sample", token, version, f"s{token}-{version}")
        head = await pushed.index_to_head()
        code, out, err = await pushed.audit(head)
        assert code == 0, out + err
        report = orjson.loads(out)
        assert report["clean"] is True
        pushes = await query(
            pushed.dsn, "select id, mined_hash from pusher_pushes where state = 'confirmed'"
        )
        assert len(pushes) == 3
        events = await announcements(pushed.world)
        assert report["transactions"] == {
            "announcements": len(events),
            "transactions": 3,
            "pushes_confirmed": 3,
            "duplicated": [],
            "unrecorded": [],
            "missing": [],
            "clean": True,
        }
        assert report["versions"] == {
            "tokens": 3,
            "versions": 6,
            "duplicated": [],
            "gaps": [],
            "clean": True,
        }
        code, text, _ = await pushed.audit(head, json=False)
        assert code == 0
        assert "versions: 6 of 3 token(s), 0 duplicated, 0 gaps" in text
        assert (
            f"transactions: 3 mined by the pusher ({len(events)} announcements), "
            "0 duplicated, 0 unrecorded, 0 missing"
        ) in text
        assert "result: clean" in text


class TestRepeatedTransactions:
    """A transaction the outbox does not know, a push mined twice and a confirmed push the
    chain lacks each make the audit fail, with the push ids and hashes."""

    async def test_double_send_then_duplicate_then_missing(self, pushed: Pushed) -> None:
        (first,) = await query(
            pushed.dsn,
            "select id, calldata, mined_hash from pusher_pushes where state = 'confirmed' "
            "order by id limit 1",
        )
        again = await resend(pushed, bytes(first["calldata"]))
        head = await pushed.index_to_head()

        # Sent by the pusher's key, not in its outbox: a double send.
        code, out, err = await pushed.audit(head)
        assert code == 1, out + err
        report = orjson.loads(out)
        assert report["kafka"]["clean"], "only the transactions differ"
        assert report["postgres"]["clean"]
        tx = report["transactions"]
        assert tx["unrecorded"] == [again]
        assert tx["duplicated"] == tx["missing"] == []
        assert (tx["transactions"], tx["pushes_confirmed"], tx["clean"]) == (4, 3, False)
        assert report["clean"] is False
        code, text, _ = await pushed.audit(head, json=False)
        assert code == 1
        assert "0 duplicated, 1 unrecorded, 0 missing" in text
        assert f"    {again}" in text
        assert "result: MISMATCH" in text

        # Recorded as a second transaction of the same push: the push was mined twice.
        async with pushed.pool.acquire() as conn:
            await conn.execute(
                "insert into pusher_transactions (hash, push_id, nonce, max_fee_per_gas, "
                "max_priority_fee_per_gas, raw) select $1, id, nonce + 1000, 0, 0, '\\x00' "
                "from pusher_pushes where id = $2",
                again,
                first["id"],
            )
        code, out, _ = await pushed.audit(head)
        assert code == 1
        tx = orjson.loads(out)["transactions"]
        assert tx["duplicated"] == [
            {"push_id": first["id"], "hashes": [first["mined_hash"], again]}
        ]
        assert tx["unrecorded"] == tx["missing"] == []

        # The outbox says a push is confirmed by a transaction the chain does not have.
        async with pushed.pool.acquire() as conn:
            await conn.execute("delete from pusher_transactions where hash = $1", again)
            (last,) = await conn.fetch(
                "select id, mined_hash from pusher_pushes where state = 'confirmed' "
                "order by id desc limit 1"
            )
            await conn.execute(
                "update pusher_pushes set mined_hash = $2 where id = $1",
                last["id"],
                "0x" + "ee" * 32,
            )
        code, out, _ = await pushed.audit(head)
        assert code == 1
        tx = orjson.loads(out)["transactions"]
        assert tx["missing"] == [{"push_id": last["id"], "hash": "0x" + "ee" * 32}]
        assert tx["unrecorded"] == [again]
        code, text, _ = await pushed.audit(head, json=False)
        assert f"    push {last['id']}: 0x{'ee' * 32}" in text


class TestRepeatedVersions:
    """Consecutive versions of one state, and a skipped version number, are reported."""

    async def test_duplicate_state_and_gap_through_the_cli(self, pushed: Pushed) -> None:
        head = await pushed.index_to_head()
        async with pushed.pool.acquire() as conn:
            # What a repeated render job would write if the insert's guard were missing.
            await insert_version(conn, "sample", 1, 1, "a")
            await insert_version(conn, "sample", 1, 2, "a")
            await insert_version(conn, "sample", 2, 1, "b1")
            await insert_version(conn, "sample", 2, 3, "b3")
            # A token back in an earlier state: a new version, not a duplicate.
            await insert_version(conn, "sample", 3, 1, "winter")
            await insert_version(conn, "sample", 3, 2, "bear")
            await insert_version(conn, "sample", 3, 3, "winter")
            await insert_version(conn, "other", 9, 5, "z")  # a collection not bound here
        code, out, err = await pushed.audit(head)
        assert code == 1, out + err
        report = orjson.loads(out)
        assert report["transactions"]["clean"] is True
        assert report["versions"] == {
            "tokens": 3,
            "versions": 7,
            "duplicated": [
                {"collection": "sample", "token_id": "1", "state_hash": "a", "versions": [1, 2]}
            ],
            "gaps": [{"collection": "sample", "token_id": "2", "versions": [1, 3]}],
            "clean": False,
        }
        code, text, _ = await pushed.audit(head, json=False)
        assert code == 1
        assert "versions: 7 of 3 token(s), 1 duplicated, 1 gaps" in text
        assert "    sample token 1 state a: versions 1, 2" in text
        assert "    sample token 2: versions 1, 3" in text


class TestVersionAuditAlone:
    """audit_versions on a fresh, fully migrated database."""

    async def test_fresh_database(self, fresh_db_dsn: str) -> None:
        await apply_migrations(fresh_db_dsn)
        conn = await asyncpg.connect(fresh_db_dsn)
        try:
            assert (await audit_versions(conn, ["c"])).as_dict()["clean"] is True
            for version in (1, 2, 4):
                await insert_version(conn, "c", 7, version, "same")
            audit = await audit_versions(conn, ["c"])
        finally:
            await conn.close()
        assert [d.as_dict() for d in audit.duplicated] == [
            {"collection": "c", "token_id": "7", "state_hash": "same", "versions": [1, 2, 4]}
        ]
        assert [g.as_dict() for g in audit.gaps] == [
            {"collection": "c", "token_id": "7", "versions": [1, 2, 4]}
        ]
        assert not audit.clean
