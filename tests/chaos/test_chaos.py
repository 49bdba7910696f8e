"""The fault suite: the whole pipeline under demo-like traffic, through kill -9 of every daemon,
a broker and a database restart, RPC faults and a node that falls behind, a reorg storm and a
lying, flapping, stale price source. Afterwards `dnft audit` must find no missing event, no
duplicate version and no duplicate transaction, every token's newest version must count the
`Fed` events the chain has, and no lie of the source may have been published.

CI runs the bounded version (one kill round, short faults); `make chaos` the long one
(CHAOS_LONG=1: ten kill rounds, longer faults, a longer storm). CHAOS_SEED repeats a run.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

import pytest

from tests.chaos.harness import DAEMONS, ChaosWorld, long_run

pytestmark = pytest.mark.chaos


def _sizes() -> dict[str, float]:
    if long_run():
        return {"rounds": 10, "down_s": 10, "rpc_s": 30, "behind_s": 20, "reorgs": 30, "feed_s": 15}
    return {"rounds": 1, "down_s": 4, "rpc_s": 10, "behind_s": 8, "reorgs": 8, "feed_s": 6}


class TestChaos:
    """Nothing lost and nothing repeated, whatever fails and in whatever order."""

    async def test_faults_lose_and_repeat_nothing(self, tmp_path: Path) -> None:
        seed = int(os.environ.get("CHAOS_SEED", int(time.time())))
        sizes = _sizes()
        rng = random.Random(seed)
        world = ChaosWorld(tmp_path, seed)
        print(f"\n[chaos] seed {seed} (CHAOS_SEED={seed} repeats it), logs in {tmp_path}")
        try:
            await world.start()
            world.report.baseline_s = await world.canary()
            print(f"[chaos] canary with no fault: {world.report.baseline_s:.1f} s", flush=True)

            # kill -9 of each daemon at a random moment, in a random order, per round.
            for round_no in range(1, int(sizes["rounds"]) + 1):
                order = list(DAEMONS)
                rng.shuffle(order)
                for name in order:
                    await asyncio.sleep(rng.uniform(0.2, 4.0))
                    await world.kill(name)
                    world.report.add(f"kill -9 {name}", f"round {round_no}", await world.canary())

            # The broker and the database go away for a while, mid-traffic.
            down = sizes["down_s"]
            drained = await asyncio.to_thread(world.restart_broker, down)
            world.report.add("tansu restart", f"drained {drained:.1f} s, down {down:g} s",
                             await world.canary())  # fmt: skip
            await asyncio.to_thread(world.postgres.stop)
            await asyncio.sleep(down)
            await asyncio.to_thread(world.postgres.start)
            world.report.add("postgres restart", f"down {down:g} s", await world.canary())

            # A misbehaving provider, then a node that stops syncing and catches up.
            assert world.proxy is not None
            faults = world.proxy.faults
            faults.p_429, faults.p_500, faults.p_drop = 0.05, 0.05, 0.03
            faults.p_delay, faults.p_garbage, faults.max_log_range = 0.1, 0.03, 5
            await asyncio.sleep(sizes["rpc_s"])
            faults.p_429 = faults.p_500 = faults.p_drop = faults.p_delay = faults.p_garbage = 0
            faults.max_log_range = None
            counts = " ".join(f"{k} {n}" for k, n in sorted(faults.counts.items()))
            world.report.add("rpc faults", f"{sizes['rpc_s']:g} s: {counts}", await world.canary())
            faults.behind_at = await world.head()
            await asyncio.sleep(sizes["behind_s"])
            behind_by = await world.head() - faults.behind_at
            faults.behind_at = None
            world.report.add("node behind", f"stuck {sizes['behind_s']:g} s, {behind_by} blocks",
                             await world.canary())  # fmt: skip

            # A reorg storm: random depth 1 to 8, every 2 to 5 blocks.
            depths = []
            for _ in range(int(sizes["reorgs"])):
                await asyncio.sleep(rng.randint(2, 5) * 0.5)
                depth = rng.randint(1, 8)
                await world.reorg(depth)
                depths.append(depth)
            world.report.add("reorg storm", f"{len(depths)} reorgs, depths {depths}"[:60],
                             await world.canary())  # fmt: skip

            # The price source flaps, lies and goes stale; then tells the truth again.
            for mode in ("flap", "spike", "stale"):
                world.source.mode = mode
                await asyncio.sleep(sizes["feed_s"])
                world.source.mode = "ok"
                world.report.add(f"feed {mode}", f"{sizes['feed_s']:g} s",
                                 await world.feed_recovery())  # fmt: skip

            await world.wait_ready(60)
            last_block = await world.settle()
            report = await asyncio.to_thread(world.audit, last_block)
            truth = await world.token_truth()
            outbox = await world.outbox()
            published = await asyncio.to_thread(world.published_values)
        finally:
            await world.stop()

        kafka, postgres = report["kafka"], report["postgres"] or {}
        versions, transactions = report["versions"], report["transactions"]
        missing = len(kafka["missing"]) + len(postgres.get("missing", []))
        duplicated_events = len(kafka["duplicated"]) + len(postgres.get("duplicated", []))
        extra = len(kafka["extra"]) + len(postgres.get("extra", []))
        duplicate_versions = len(versions["duplicated"])
        duplicate_txs = len(transactions["duplicated"]) + len(transactions["unrecorded"])
        wrong_tokens = {t: v for t, v in truth.items() if v[0] != v[1]}
        lies = sorted(set(published) & world.source.lies)
        print(world.report.table())
        print(
            f"[chaos] audit of blocks {report['from_block']}..{last_block}: "
            f"{report['chain']['events']} events on chain; missing {missing}, extra {extra}, "
            f"duplicated events {duplicated_events}; versions {versions['versions']} "
            f"(duplicate {duplicate_versions}, gaps {len(versions['gaps'])}); pusher "
            f"transactions {transactions['transactions']} (duplicate {duplicate_txs}, "
            f"missing {len(transactions['missing'])})"
        )
        print(
            f"[chaos] traffic {dict(world.traffic_stats)}; outbox {outbox}; daemon exits "
            f"{ {n: d.exits for n, d in world.daemons.items() if d.exits} }; "
            f"source lies served {len(world.source.lies)}, published {len(lies)}"
        )
        assert (missing, extra, duplicated_events) == (0, 0, 0), report
        assert (duplicate_versions, len(versions["gaps"])) == (0, 0), versions
        assert (duplicate_txs, len(transactions["missing"])) == (0, 0), transactions
        assert report["clean"], report
        assert (outbox["failed"], outbox["confirmed"]) == (0, outbox["updates"]), outbox
        assert not wrong_tokens, f"token -> (Fed on chain, fed in newest version): {wrong_tokens}"
        assert not lies, f"published values the source lied with: {lies}"
