"""`dnft pusher` against real anvil, tansu and Postgres: an old but real version of a token,
written straight to Kafka (or replayed) after a newer one was recorded, is refused and
counted (``superseded``), so a URI-carrying push never writes the old URI over the newer one;
a replay of the current version stays a no-op, and newer versions still go through."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from dnft.config import settings_from_mapping
from dnft.devservices import AnvilService
from tests.support.chain import make_world
from tests.support.pushed import nonce, outbox_counts, query, refused, wait_confirmed
from tests.support.pusher import (
    TEST_COLLECTION,
    PusherConfigFor,
    cid_of,
    funded_updater,
    produce_unrecorded,
    produce_updates,
    record_versions,
    running_pusher,
    update_message,
)
from tests.support.wait import wait_for


def _async(predicate: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return predicate()

    return check


class TestNoRollback:
    async def test_old_version_after_newer_refused_uri_kept(
        self, ticking_anvil: AnvilService, pusher_config_for: PusherConfigFor
    ) -> None:
        world = await make_world(ticking_anvil.rpc_url, mint_count=3)
        updater = await funded_updater(world)
        raw = pusher_config_for(world, updater, mode="token-uri", window_s=0.5)
        settings = settings_from_mapping(raw, {})
        dsn, kafka = settings.postgres.dsn, settings.kafka
        with structlog.testing.capture_logs() as logs:
            async with running_pusher(settings) as runtime:
                intake = runtime.intake
                assert intake is not None
                # Token 2 has two real versions; only the newer one's update reaches the
                # pusher (as when the render worker's message for v1 was lost or came first
                # to another deployment): v2's URI is written.
                record_versions(dsn, [(2, 1)], TEST_COLLECTION)
                produce_updates(kafka, world, [(2, 2)])
                await wait_confirmed(dsn, 1, 60)
                uri = world.collection.functions.tokenURI(2).call
                assert await uri() == f"ipfs://{cid_of(2, 2)}"
                sent = await nonce(world, updater.address, "pending")
                before = refused("superseded")

                # Someone who reaches Kafka writes v1 (real: token_versions holds it with this
                # CID) and replays v2.
                produce_unrecorded(
                    kafka, [update_message(world, 2, 1), update_message(world, 2, 2)]
                )
                await wait_for("both consumed", _async(lambda: intake.seen >= 3), 30)
                await asyncio.sleep(1.5)  # past the window: a push would be planned by now
                assert (intake.refused, intake.recorded) == (1, 1)
                assert refused("superseded") == before + 1
                counts = await outbox_counts(dsn)
                assert (counts["updates"], counts["pushes"]) == (1, 1), counts
                assert await nonce(world, updater.address, "pending") == sent, "signed again"
                assert await uri() == f"ipfs://{cid_of(2, 2)}", "the URI was rolled back"

                # A newer version still goes through, behind the refused one.
                produce_updates(kafka, world, [(2, 3)])
                await wait_confirmed(dsn, 2, 60)
                assert await uri() == f"ipfs://{cid_of(2, 3)}"
        rows = await query(dsn, "select version from pusher_updates order by version")
        assert [r["version"] for r in rows] == [2, 3]
        warned = [e for e in logs if e["event"].startswith("metadata update refused")]
        assert [(e["token_id"], e["version"], e["reason"]) for e in warned] == [
            ("2", 1, "superseded")
        ]
        assert "rollback" in warned[0]["event"]
