"""`dnft run --all` end to end on real anvil, tansu and Postgres: mints become versions, the
API serves them and the pusher announces them; then a replay of the block range and a forced
re-render change nothing: no second version, no second transaction, no second refresh."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import yaml

from dnft.devservices import AnvilService
from dnft.devservices.ports import free_port
from tests.support.chain import make_world
from tests.support.cli import run_dnft, write_config
from tests.support.daemon import DaemonProcess
from tests.support.indexer import IndexerConfigFor
from tests.support.pushed import announcements, coverage
from tests.support.pusher import funded_updater, write_key
from tests.support.wait import wait_for

REPO = Path(__file__).resolve().parents[2]
TOKENS = 5


class TestRunAll:
    """Every daemon in one process; replays and re-renders have no duplicate side effects."""

    async def test_pipeline_then_replay_is_a_no_op(
        self,
        ticking_anvil: AnvilService,
        indexer_config_for: IndexerConfigFor,
        unique_topic: Callable[[str], str],
        tmp_path: Path,
    ) -> None:
        world = await make_world(ticking_anvil.rpc_url, mint_count=TOKENS)
        updater = await funded_updater(world)
        collection = yaml.safe_load((REPO / "collections/sample.yaml").read_text())
        collection["image_size"] = 64
        (tmp_path / "collection.yaml").write_text(yaml.safe_dump(collection))
        api_port, health_port = free_port(), free_port()
        raw: dict[str, Any] = indexer_config_for(world, http_port=health_port)
        raw["kafka"]["topics"] |= {
            name: unique_topic(name)
            for name in ("oracle_observations", "render_jobs", "metadata_updates", "dead_letter")
        }
        raw["collections"] = [{"file": str(tmp_path / "collection.yaml")}]
        raw["regenerator"] = {
            "storage": {"kind": "local", "path": str(tmp_path / "blobs")},
            "public_url": f"http://127.0.0.1:{api_port}",
            "planner_group": unique_topic("planner"),
            "render_group": unique_topic("render"),
        }
        raw["api"] = {"port": api_port}
        raw["pusher"] = {
            "group": unique_topic("pusher"),
            "collections": [{"contract": "collection", "mode": "erc4906"}],
            "signer": {"key_file": str(write_key(tmp_path / "signer.key", updater))},
            "window_s": 0.5,
            "confirmations": 2,
            "poll_interval_s": 0.1,
        }
        config = write_config(tmp_path / "dnft.yaml", raw)
        db = raw["postgres"]["dsn"]

        daemon = DaemonProcess("run --all", config, health_port, tmp_path / "run.log")
        daemon.start()
        try:

            async def all_versions() -> int | None:
                conn = await asyncpg.connect(db)
                try:
                    count = await conn.fetchval("select count(*) from token_versions")
                finally:
                    await conn.close()
                return count if count >= TOKENS else None

            async def all_announced() -> bool:
                return set(coverage(await announcements(world))) >= set(range(1, TOKENS + 1))

            await wait_for("a version per minted token", all_versions, 90, every_s=0.5)
            await wait_for("every token announced on chain", all_announced, 60, every_s=0.5)
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{api_port}/tokens/1") as response:
                    assert response.status == 200
                    assert (await response.json())["name"] == "Critter #1"
                async with http.get(f"http://127.0.0.1:{health_port}/readyz") as response:
                    assert response.status == 200, await response.text()

            versions_before = await all_versions()
            refreshes_before = sorted(await announcements(world))
            nonce_before = (
                await world.rpc("eth_getTransactionCount", [updater.address, "latest"])
            )["result"]

            head = await world.block_number()
            replayed = run_dnft(config, "replay", "--network", "local", "--from-block", "0",
                           "--to-block", str(head - 2), "--yes")  # fmt: skip
            assert replayed.returncode == 0, replayed.stderr
            rerendered = run_dnft(config, "rerender", "--all", "--force", "--yes")
            assert rerendered.returncode == 0, rerendered.stderr
            assert f"re-announced (--force): {TOKENS}" in rerendered.stdout

            async def jobs_handled() -> bool:
                # The planner drained the replay; the forced jobs were re-announced.
                text = await daemon.metrics_text()
                rendered = [
                    line
                    for line in text.splitlines()
                    if line.startswith("dnft_regenerator_events_total")
                    and 'outcome="duplicate"' in line
                ]
                return bool(rendered) and sum(float(x.rsplit(" ", 1)[1]) for x in rendered) >= (
                    TOKENS
                )

            await wait_for("the replayed events reach the planner", jobs_handled, 60, every_s=0.5)
            updates_topic = raw["kafka"]["topics"]["metadata_updates"]

            async def reannouncements_consumed() -> bool:
                # Each version announced twice (rendered, then --force), both read by the pusher.
                text = await daemon.metrics_text()
                return any(
                    line.startswith("dnft_kafka_messages_consumed_total")
                    and f'group="{raw["pusher"]["group"]}"' in line
                    and f'topic="{updates_topic}"' in line
                    and float(line.rsplit(" ", 1)[1]) >= 2 * TOKENS
                    for line in text.splitlines()
                )

            await wait_for("the pusher reads the re-announcements", reannouncements_consumed, 60)
            await asyncio.sleep(3)  # past the pusher's window and confirmation depth
            assert await all_versions() == versions_before, "no second version"
            assert sorted(await announcements(world)) == refreshes_before, "no second refresh"
            nonce_after = (await world.rpc("eth_getTransactionCount", [updater.address, "latest"]))[
                "result"
            ]
            assert nonce_after == nonce_before, "no second transaction"
            assert daemon.alive()
            assert daemon.terminate() == 0
        finally:
            daemon.kill9()
