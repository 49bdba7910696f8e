"""Median feeds over three real HTTP sources: 2 of 3 agree, the spike is recorded as not
agreeing, and too few fresh agreeing sources publish nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from dnft.migrations import apply_migrations
from oracle_feeds import SystemClock
from tests.support.chain import wait_until
from tests.support.oracle import (
    FeedServer,
    ManualClock,
    Oracle,
    counted,
    http_feed,
    observations,
    sha256,
)
from tests.support.oracle import oracle_settings as make


class TestMedian:
    """The median of agreeing fresh sources, with who agreed and each source's hash."""

    async def test_quorum_two_of_three(
        self,
        server: FeedServer,
        kafka_bootstrap: str,
        fresh_db_dsn: str,
        unique_topic: Callable[[str], str],
    ) -> None:
        await apply_migrations(fresh_db_dsn)
        tag = time.monotonic_ns() % 10**9
        a, b, c, m = (f"{n}-{tag}" for n in ("a", "b", "c", "m"))
        settings = make(
            [
                http_feed(server, a, path="a", publish=False),
                http_feed(server, b, path="b", publish=False),
                http_feed(server, c, path="c", publish=False),
                {
                    "kind": "median",
                    "id": m,
                    "sources": [a, b, c],
                    "quorum": 2,
                    "tolerance": 0.01,
                    "max_age_s": 30,
                },
            ],
            bootstrap=kafka_bootstrap,
            dsn=fresh_db_dsn,
            topic=unique_topic("oracle"),
        )
        clock = ManualClock()
        async with Oracle(settings, clock) as oracle:
            server.serve("a", server.price("100"))
            server.serve("b", server.price("101"))
            server.serve("c", server.price("100000"))  # a 1000x outlier
            for source in (a, b, c):
                assert (await oracle[source].step()).outcome == "accepted"
            assert oracle[m].wake.is_set(), "an accepted source wakes its median"
            assert (await oracle[m].step()).published == "first"

            # Only b keeps reading; a and c answer 500 and age out of max_age_s.
            server.serve("a", server.raw(b"down", status=500))
            server.serve("c", server.raw(b"down", status=500))
            clock.advance(31)
            for source in (a, b, c):
                await oracle[source].step()
            result = await oracle[m].step()
            assert result.outcome == "no_quorum"

        stream = await observations(settings)
        assert [m_["feed_id"] for m_ in stream] == [m], "sources with publish: false stay quiet"
        (obs,) = stream
        assert obs["value"] == "100.5"
        assert {s["source"]: s["agreed"] for s in obs["sources"]} == {a: True, b: True, c: False}
        bodies = {name: server.bodies[path][0] for name, path in ((a, "a"), (b, "b"), (c, "c"))}
        for s in obs["sources"]:
            assert s["response_sha256"] == sha256(bodies[s["source"]])
        assert counted(m, "no_quorum") == 1

    async def test_runtime_wakes_the_median(
        self,
        server: FeedServer,
        kafka_bootstrap: str,
        fresh_db_dsn: str,
        unique_topic: Callable[[str], str],
    ) -> None:
        """Under the real scheduler a median with a long interval still follows its sources."""
        await apply_migrations(fresh_db_dsn)
        tag = time.monotonic_ns() % 10**9
        a, b, m = (f"{n}-{tag}" for n in ("wa", "wb", "wm"))
        settings = make(
            [
                http_feed(server, a, path="a", interval_s=0.05),
                http_feed(server, b, path="b", interval_s=0.05),
                {"kind": "median", "id": m, "sources": [a, b], "quorum": 2, "interval_s": 3600},
            ],
            bootstrap=kafka_bootstrap,
            dsn=fresh_db_dsn,
            topic=unique_topic("oracle"),
        )
        server.serve("a", server.price("10"))
        server.serve("b", server.price("10.05"))
        async with Oracle(settings, SystemClock()) as oracle:
            stopping = asyncio.Event()
            tasks = [asyncio.create_task(r.run(stopping)) for r in oracle.runners.values()]
            median = oracle[m]
            await wait_until(lambda: median.last is not None, 10, "the first median")
            server.serve("b", server.price("10.5"))
            server.serve("a", server.price("10.45"))
            await wait_until(
                lambda: median.last is not None and median.last.round_id >= 2, 10, "round 2"
            )
            stopping.set()
            for r in oracle.runners.values():
                r.wake.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 10)
        values = [o["value"] for o in await observations(settings, m)]
        assert values[:2] == ["10.025", "10.475"]
