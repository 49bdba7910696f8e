"""HTTP feeds against a real local server serving good and bad payloads, with real Kafka and
Postgres: every bad reading is refused with its reason and counted, the stream stays right.
Median feeds over three such sources: 2 of 3 agree, the spike is recorded as not agreeing,
and too few fresh agreeing sources publish nothing."""

from __future__ import annotations

import asyncio
import gzip
from typing import Any

import orjson
import pytest

from dnft.config import HttpFeedSettings
from oracle_feeds import HttpFeed, Rejected, SystemClock
from tests.support.oracle import (
    FeedServer,
    ManualClock,
    Oracle,
    OracleSettingsFor,
    counted,
    http_feed,
    observations,
    rounds,
    sha256,
    unique_feed_id,
)
from tests.support.wait import wait_until


async def read(settings: dict[str, Any]) -> Any:
    feed = HttpFeed(HttpFeedSettings.model_validate(settings))
    try:
        return await feed.read()
    finally:
        await feed.close()


async def refused(settings: dict[str, Any]) -> Rejected:
    with pytest.raises(Rejected) as info:
        await read(settings)
    return info.value


class TestBadPayloads:
    """One feed through every bad payload in turn: each refused with its reason and counted,
    the last good value kept, and only good values published."""

    async def test_every_bad_payload_is_refused(
        self, server: FeedServer, oracle_settings_for: OracleSettingsFor
    ) -> None:
        fid = unique_feed_id("bad")
        clock = ManualClock()
        guards: dict[str, Any] = {"min": 0, "max": 1_000_000, "max_change": 0.5, "max_age_s": 60}
        policy: dict[str, Any] = {"deviation": {"relative": 0.01}, "heartbeat_s": 3600}
        reading: dict[str, Any] = {
            "timestamp_path": "data.ts",
            "timeout_s": 0.5,
            "max_body_bytes": 4096,
        }
        settings = oracle_settings_for(http_feed(server, fid, **guards, **policy, **reading))
        s = server
        offhost = s.url("eth", host="localhost")
        html = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
        script: list[tuple[str, Any, str]] = [
            # (what, handler, expected outcome)
            ("good", s.price("100", clock.t), "accepted"),
            ("malformed JSON", s.raw(b'{"data": {"price": 10'), "malformed"),
            ("HTML error page", s.raw(html, content_type="text/html"), "malformed"),
            ("missing value", s.raw(b'{"data": {"cost": 1}}'), "malformed"),
            ("500", s.raw(b"oops", status=500, content_type="text/plain"), "http_status"),
            ("slow drip", s.drip(3.0), "timeout"),
            ("huge body, streamed", s.endless(), "too_large"),
            ("huge body, announced", s.raw(b" " * 10_000), "too_large"),
            ("NaN literal", s.raw(b'{"data": {"price": NaN, "ts": %d}}' % clock.t), "not_finite"),
            ("NaN string", s.price("NaN", clock.t), "not_finite"),
            ("not a number", s.price("n/a", clock.t), "not_numeric"),
            ("negative price", s.price(-5, clock.t), "out_of_bounds"),
            ("1000x spike", s.price("100000", clock.t), "jump"),
            ("stale timestamp", s.price("100", clock.t - 3600), "stale"),
            ("future timestamp", s.price("100", clock.t + 3600), "bad_timestamp"),
            ("redirect to another host", s.redirect(offhost), "redirect"),
            ("good, small move", s.price("100.5", clock.t), "accepted"),
            ("good, 2% move", s.price("102", clock.t), "accepted"),
        ]
        async with Oracle(settings, clock) as oracle:
            runner = oracle[fid]
            for what, handler, expected in script:
                server.serve("eth", handler)
                result = await runner.step()
                assert result.outcome == expected, f"{what}: {result}"
                if expected != "accepted":
                    assert runner.latest is not None, "the last good value is kept"
                    assert runner.latest.value == 100
                clock.advance(1)
            published_body = server.bodies["eth"][-1]

            # 429 with Retry-After: no request until it has passed, then reading resumes.
            server.serve("eth", s.raw(b"slow down", status=429, headers={"Retry-After": "30"}))
            assert (await runner.step()).outcome == "rate_limited"
            server.serve("eth", s.price("102.1", clock.t + 31))
            before = server.count("eth")
            clock.advance(29)
            assert (await runner.step()).outcome is None
            assert server.count("eth") == before, "no request before Retry-After has passed"
            assert runner.next_wake_at() >= runner.not_before
            clock.advance(2)
            assert (await runner.step()).outcome == "accepted"

        # Nothing leaked from a bad reading: only the first value and the 2% move.
        stream = await observations(settings, fid)
        assert rounds(stream) == [(1, "100", "first"), (2, "102", "deviation")]
        (source,) = stream[1]["sources"]
        assert source["response_sha256"] == sha256(published_body)
        assert source["value"] == "102"
        expected_counts: dict[str, int] = {}
        for _, _, outcome in script:
            expected_counts[outcome] = expected_counts.get(outcome, 0) + 1
        expected_counts["rate_limited"] = 1
        expected_counts["accepted"] += 1
        for outcome, n in expected_counts.items():
            assert counted(fid, outcome) == n, outcome


class TestRetryAfter:
    """The feed's own schedule honours a 429's Retry-After (real time, real sleeps)."""

    async def test_no_request_before_retry_after(
        self, server: FeedServer, oracle_settings_for: OracleSettingsFor
    ) -> None:
        fid = unique_feed_id("429")
        settings = oracle_settings_for(http_feed(server, fid, interval_s=0.05))
        server.serve(
            "eth",
            server.raw(b"{}", status=429, headers={"Retry-After": "1"}),
            server.price("7"),
        )
        async with Oracle(settings, SystemClock()) as oracle:
            runner = oracle[fid]
            stopping = asyncio.Event()
            task = asyncio.create_task(runner.run(stopping))
            await wait_until(lambda: server.count("eth") >= 3, 5, "three requests")
            stopping.set()
            runner.wake.set()
            await asyncio.wait_for(task, 5)
        first, second, *_ = server.requests["eth"]
        assert second - first >= 0.99, "the second request waited for Retry-After"
        assert counted(fid, "rate_limited") == 1
        assert counted(fid, "accepted") >= 1


class TestGuard:
    """SSRF guard and redirects, read by read (no Kafka needed)."""

    async def test_loopback_refused_without_opt_in(self, server: FeedServer) -> None:
        server.serve("eth", server.price("1"))
        feed = http_feed(server, "g1", allow_private_hosts=False)
        rejected = await refused(feed)
        assert (rejected.reason, rejected.detail) == (
            "blocked_host",
            "127.0.0.1 is a loopback address",
        )
        assert server.count("eth") == 0, "refused before any connection"

    async def test_names_are_checked_at_resolution(self, server: FeedServer) -> None:
        server.serve("eth", server.price("1"))
        feed = http_feed(
            server, "g2", allow_private_hosts=False, url=server.url("eth", "localhost")
        )
        rejected = await refused(feed)
        assert rejected.reason == "blocked_host"
        assert "localhost resolves to" in rejected.detail
        assert server.count("eth") == 0
        feed["allow_private_hosts"] = True
        assert (await read(feed)).value == 1

    async def test_same_host_redirect_is_followed(self, server: FeedServer) -> None:
        server.serve("old", server.redirect("/eth", status=301))
        server.serve("eth", server.price("42.5"))
        assert (await read(http_feed(server, "g3", path="old"))).value == pytest.approx(42.5)

    async def test_redirect_to_another_host_is_refused(self, server: FeedServer) -> None:
        server.serve("old", server.redirect(server.url("eth", host="localhost")))
        server.serve("eth", server.price("1"))
        rejected = await refused(http_feed(server, "g4", path="old"))
        assert rejected.reason == "redirect"
        assert server.count("eth") == 0, "the other host was never asked"

    async def test_redirect_loop(self, server: FeedServer) -> None:
        server.serve("loop", server.redirect("/loop"))
        rejected = await refused(http_feed(server, "g5", path="loop"))
        assert (rejected.reason, rejected.detail) == ("redirect", "more than 3 redirects")

    async def test_connection_refused(self) -> None:
        feed = {
            "kind": "http",
            "id": "g6",
            "url": "http://127.0.0.1:9/x",
            "value_path": "p",
            "allow_private_hosts": True,
        }
        assert (await refused(feed)).reason == "connection"

    async def test_secret_headers_are_sent(self, server: FeedServer) -> None:
        seen: list[str] = []

        async def handler(request: Any) -> Any:
            seen.append(request.headers.get("X-Api-Key", ""))
            return await server.price("3")(request)

        server.serve("eth", handler)
        assert (await read(http_feed(server, "g7", headers={"X-Api-Key": "k3y"}))).value == 3
        assert seen == ["k3y"]

    async def test_gzip_bomb_is_capped_after_decoding(self, server: FeedServer) -> None:
        bomb = gzip.compress(b'{"data": {"price": "1", "pad": "' + b" " * 20_000_000 + b'"}}')
        assert len(bomb) < 30_000
        server.serve("eth", server.raw(bomb, headers={"Content-Encoding": "gzip"}))
        rejected = await refused(http_feed(server, "g9", max_body_bytes=100_000))
        assert (rejected.reason, rejected.detail) == ("too_large", "body passed 100000 bytes")

    async def test_big_body_is_parsed_off_the_loop(self, server: FeedServer) -> None:
        body = orjson.dumps({"data": {"price": "5", "pad": "x" * 200_000}})
        server.serve("eth", server.raw(body))
        assert (await read(http_feed(server, "g8", max_body_bytes=300_000))).value == 5


class TestMedian:
    """The median of agreeing fresh sources, with who agreed and each source's hash."""

    async def test_quorum_two_of_three(
        self, server: FeedServer, oracle_settings_for: OracleSettingsFor
    ) -> None:
        a, b, c, m = (unique_feed_id(n) for n in ("a", "b", "c", "m"))
        paths = {a: "a", b: "b", c: "c"}
        quiet = [http_feed(server, f, path=path, publish=False) for f, path in paths.items()]
        median = {"kind": "median", "id": m, "sources": [a, b, c], "quorum": 2}
        settings = oracle_settings_for(*quiet, median | {"tolerance": 0.01, "max_age_s": 30})
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
        bodies = {name: server.bodies[path][0] for name, path in paths.items()}
        for s in obs["sources"]:
            assert s["response_sha256"] == sha256(bodies[s["source"]])
        assert counted(m, "no_quorum") == 1

    async def test_runtime_wakes_the_median(
        self, server: FeedServer, oracle_settings_for: OracleSettingsFor
    ) -> None:
        """Under the real scheduler a median with a long interval still follows its sources."""
        a, b, m = (unique_feed_id(n) for n in ("wa", "wb", "wm"))
        settings = oracle_settings_for(
            http_feed(server, a, path="a", interval_s=0.05),
            http_feed(server, b, path="b", interval_s=0.05),
            {"kind": "median", "id": m, "sources": [a, b], "quorum": 2, "interval_s": 3600},
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
