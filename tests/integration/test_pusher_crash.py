"""kill -9 of `dnft pusher` (a real subprocess) five times while updates flow: afterwards
every update is announced on chain exactly once and no extra transaction was mined."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import time
from pathlib import Path

from dnft.config import settings_from_mapping
from dnft.devservices import AnvilService
from dnft.devservices.ports import free_port
from tests.support.chain import make_world
from tests.support.cli import write_config
from tests.support.daemon import DaemonProcess
from tests.support.pushed import announcements, coverage, nonce, outbox_counts, query
from tests.support.pusher import PusherConfigFor, funded_updater, produce_updates
from tests.support.wait import wait_for


class CrashingPusher(DaemonProcess):
    """`dnft pusher` with the crash hook armed (DNFT_PUSHER_CRASH_AT, see crashpoints.py)."""

    def start_at(self, crash_at: str | None) -> None:
        self.start(**({"DNFT_PUSHER_CRASH_AT": crash_at} if crash_at else {}))


class TestKillNine:
    """Crashes between recording, planning, signing, sending and receipts lose and repeat
    nothing."""

    async def test_five_kills(
        self, ticking_anvil: AnvilService, pusher_config_for: PusherConfigFor, tmp_path: Path
    ) -> None:
        seed = int(os.environ.get("PUSHER_CRASH_SEED", time.time()))
        rng = random.Random(seed)
        world = await make_world(ticking_anvil.rpc_url)
        updater = await funded_updater(world)
        port = free_port()
        raw = pusher_config_for(
            world,
            updater,
            http_port=port,
            window_s=0.3,
            max_range_size=25,
            max_transactions_per_minute=600,
        )
        config = write_config(tmp_path / "dnft.yaml", raw)
        kafka, db = settings_from_mapping(raw, {}).kafka, raw["postgres"]["dsn"]
        log = tmp_path / "pusher.log"
        daemon = CrashingPusher("pusher", config, port, log)

        produced: list[tuple[int, int]] = []
        next_token = 1

        def wave(size: int, reupdate: int = 0) -> None:
            nonlocal next_token
            fresh = [(t, 1) for t in range(next_token, next_token + size)]
            next_token += size
            again = (
                [(t, 2) for t in rng.sample(range(1, next_token - size), reupdate)]
                if (reupdate and next_token - size > 1)
                else []
            )
            batch = fresh + again
            produce_updates(kafka, world, batch)
            produced.extend(batch)

        # Five kills: four at named points between the steps, one at a random moment.
        points = ["after_record", "after_sign", "after_send", "after_mined", None]
        for i, point in enumerate(points):
            wave(rng.randrange(30, 80), reupdate=5 if i in (2, 4) else 0)
            if point is None:
                daemon.start_at(None)
                await asyncio.sleep(rng.uniform(2.0, 5.0))
                daemon.kill9()
            else:
                daemon.start_at(point)
                assert daemon.proc is not None
                proc = daemon.proc

                async def died(p: subprocess.Popen[bytes] = proc) -> bool:
                    return p.poll() is not None

                await wait_for(f"the crash at {point}", died, 45)
                assert proc.returncode == -9, f"{point}: exit {proc.returncode} (see {log})"

        # The last run: everything produced must end up confirmed, then a graceful stop.
        wave(20)
        daemon.start_at(None)

        async def all_confirmed() -> bool:
            c = await outbox_counts(db)
            return c["updates"] == len(set(produced)) and c["confirmed"] == c["updates"]

        try:
            await wait_for("every update confirmed", all_confirmed, 60, every_s=0.3)
        finally:
            code = daemon.terminate() if daemon.alive() else None
        assert code == 0, f"seed {seed}: graceful stop failed (see {log})"

        # Exactly once, read back from the chain: every announcement is one confirmed push's
        # transaction, every updated token is covered once per push that covered it, and the
        # signer mined no other transaction.
        pushes = await query(
            db,
            "select id, mined_hash, first_token, last_token from pusher_pushes "
            "where state = 'confirmed'",
        )
        events = await announcements(world)
        assert sorted((h, f, la) for h, f, la in events) == sorted(
            (p["mined_hash"], int(p["first_token"]), int(p["last_token"])) for p in pushes
        ), f"seed {seed}"
        assert await nonce(world, updater.address) == len(pushes) == len(events), f"seed {seed}"
        per_token = await query(
            db,
            "select token_id, count(distinct push_id) as pushes from pusher_updates "
            "group by token_id",
        )
        expected = {int(r["token_id"]): r["pushes"] for r in per_token}
        assert set(expected) == {t for t, _ in produced}
        assert dict(coverage(events)) == expected, f"seed {seed}"
        assert all(1 <= n <= 2 for n in expected.values())
        text = log.read_text()
        assert text.count('"event": "pusher running"') >= 5
        assert updater.key_hex not in text.lower()
