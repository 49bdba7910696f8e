"""Publish policy and durability with real Kafka and Postgres: deviation and heartbeat on a
hand-moved clock, restarts, crashes inside a publish, and `dnft oracle` killed with -9."""

from __future__ import annotations

import asyncio
import json
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import pytest

from dnft.config import Settings
from dnft.devservices.ports import free_port
from dnft.errors import ServiceError
from dnft.kafka import AsyncProducer
from oracle_feeds import OracleRuntime
from oracle_feeds.parse import iso_utc
from tests.support.cli import write_settings
from tests.support.daemon import DaemonProcess
from tests.support.oracle import (
    FeedServer,
    ManualClock,
    Oracle,
    OracleSettingsFor,
    dedupe,
    http_feed,
    observations,
    published,
    rounds,
    unique_feed_id,
)
from tests.support.wait import wait_until


class OneFeed(Protocol):
    def __call__(self, prefix: str, **options: Any) -> tuple[str, Settings]: ...


@pytest.fixture
def one_feed(server: FeedServer, oracle_settings_for: OracleSettingsFor) -> OneFeed:
    """``feed, settings = one_feed("prefix", **options)``: settings of one HTTP feed (a new
    id) reading the test's feed server, with ``options``."""

    def make(prefix: str, **options: Any) -> tuple[str, Settings]:
        feed = unique_feed_id(prefix)
        return feed, oracle_settings_for(http_feed(server, feed, **options))

    return make


class TestPublishPolicy:
    """Deviation and heartbeat publish exactly when they should, on a hand-moved clock."""

    async def test_relative_deviation_and_heartbeat(
        self, server: FeedServer, one_feed: OneFeed
    ) -> None:
        feed, settings = one_feed(
            "policy", deviation={"relative": 0.01}, heartbeat_s=60, interval_s=10
        )
        clock = ManualClock()
        t0 = clock.t
        schedule = [
            (0, "100", "first"),
            (10, "100.5", None),
            (20, "100.99", None),  # 0.99%: below the threshold
            (30, "101", "deviation"),  # exactly 1% from the last published 100
            (40, "101.5", None),  # 0.5% from 101
            (89.999, "101.5", None),  # 59.999 s after the last publish
            (90, "101.5", "heartbeat"),  # 60 s: the heartbeat is due
            (100, "100.6", None),
            (149.9, "100.6", None),
            (150, "100.6", "heartbeat"),  # 60 s after the heartbeat
            (155, "99.5", "deviation"),  # -1.09% from 100.6
        ]
        async with Oracle(settings, clock) as oracle:
            runner = oracle[feed]
            for offset, price, expected in schedule:
                clock.t = t0 + offset
                server.serve("eth", server.price(price))
                result = await runner.step()
                assert (result.outcome, result.published) == ("accepted", expected), offset
                if expected == "heartbeat":
                    # Polled every 10 s, but woken exactly when the next heartbeat is due.
                    assert runner.next_wake_at() == clock.t + 10
            clock.t = t0 + 200
            assert runner.next_wake_at() == t0 + 210
        stream = await observations(settings, feed)
        publishes = [(o, p, r) for o, p, r in schedule if r is not None]
        assert rounds(stream) == [(i, p, r) for i, (_, p, r) in enumerate(publishes, start=1)]
        assert [m["published_at"] for m in stream] == [iso_utc(t0 + o) for o, _, _ in publishes]

    async def test_wakes_for_the_heartbeat_between_polls(
        self, server: FeedServer, one_feed: OneFeed
    ) -> None:
        feed, settings = one_feed("wake", heartbeat_s=60, interval_s=100)
        clock = ManualClock()
        server.serve("eth", server.price("7"))
        async with Oracle(settings, clock) as oracle:
            runner = oracle[feed]
            assert (await runner.step()).published == "first"
            assert runner.next_wake_at() == clock.t + 60
            clock.advance(60)
            assert (await runner.step()).published == "heartbeat"

    async def test_the_period_runs_from_the_start_of_a_read(
        self, server: FeedServer, one_feed: OneFeed
    ) -> None:
        feed, settings = one_feed("period", interval_s=10)
        clock = ManualClock()
        server.serve("eth", server.price("7"))
        async with Oracle(settings, clock) as oracle:
            runner = oracle[feed]
            runner.step_began = began = clock.t  # as run() sets it
            assert (await runner.step()).published == "first"
            clock.advance(3)  # the read and the publish took 3 s: still due 10 s after began
            assert runner.next_wake_at() == began + 10
            clock.advance(20)  # slower than the interval: due at once, not 10 s later
            assert runner.next_wake_at() == clock.t

    async def test_absolute_deviation(self, server: FeedServer, one_feed: OneFeed) -> None:
        feed, settings = one_feed("abs", deviation={"absolute": 0.5})
        clock = ManualClock()
        async with Oracle(settings, clock) as oracle:
            for price, expected in [("20", "first"), ("20.49", None), ("19.5", "deviation")]:
                server.serve("eth", server.price(price))
                assert (await oracle[feed].step()).published == expected
                clock.advance(1)
        assert rounds(await observations(settings, feed)) == [
            (1, "20", "first"),
            (2, "19.5", "deviation"),
        ]


class TestRestart:
    """The last publish lives in Postgres: a restart neither re-publishes it nor misses the
    heartbeat, and a spike right after a restart is still a jump."""

    async def test_restart_between_two_readings(
        self, server: FeedServer, one_feed: OneFeed
    ) -> None:
        feed, settings = one_feed(
            "restart", deviation={"relative": 0.01}, heartbeat_s=60, max_change=0.5
        )
        clock = ManualClock()
        t0 = clock.t
        server.serve("eth", server.price("100"))
        async with Oracle(settings, clock) as oracle:
            assert (await oracle[feed].step()).published == "first"

        clock.t = t0 + 30
        async with Oracle(settings, clock) as oracle:
            runner = oracle[feed]
            assert runner.last is not None
            assert runner.last.round_id == 1
            assert runner.next_wake_at() == t0 + 40
            assert (await runner.step()).published is None, "no re-publish after a restart"
            server.serve("eth", server.price("100000"))
            assert (await runner.step()).outcome == "jump"
            server.serve("eth", server.price("100.2"))
            clock.t = t0 + 59.9
            assert (await runner.step()).published is None
            clock.t = t0 + 60
            assert (await runner.step()).published == "heartbeat", "due from the stored time"

        # Down for several heartbeats: the first good reading after the restart publishes.
        clock.t = t0 + 500
        async with Oracle(settings, clock) as oracle:
            assert (await oracle[feed].step()).published == "heartbeat"

        stream = await observations(settings, feed)
        assert rounds(stream) == [
            (1, "100", "first"),
            (2, "100.2", "heartbeat"),
            (3, "100.2", "heartbeat"),
        ]
        assert [m["published_at"] for m in stream] == [
            iso_utc(t0),
            iso_utc(t0 + 60),
            iso_utc(t0 + 500),
        ]


class TestCrashInsidePublish:
    """A crash between the steps of a publish (intent, Kafka, commit) loses no round and
    leaves at most one byte-identical duplicate, dropped by (feed_id, round_id)."""

    async def publish_then_crash(
        self, server: FeedServer, one_feed: OneFeed, prefix: str, *, sent: bool
    ) -> tuple[str, Settings, ManualClock]:
        """A feed that published 100, then died publishing 105: what ``FeedRunner.step``
        does, stopped dead after the intent (or, ``sent``, after Kafka too)."""
        feed, settings = one_feed(prefix, deviation={"relative": 0.01})
        clock = ManualClock()
        server.serve("eth", server.price("100"))
        async with Oracle(settings, clock) as oracle:
            runner = oracle[feed]
            await runner.step()
            server.serve("eth", server.price("105"))
            reading = await runner.feed.read()
            runner.validator.check(reading, clock.now())
            assert oracle.publisher is not None
            intent = oracle.publisher.intent(runner.last, reading, "deviation", clock.now())
            await oracle.publisher.record(feed, intent)
            if sent:
                await oracle.producer.send(oracle.publisher.message(feed, intent.message))
        return feed, settings, clock

    async def test_crash_after_intent_before_kafka(
        self, server: FeedServer, one_feed: OneFeed
    ) -> None:
        feed, settings, clock = await self.publish_then_crash(
            server, one_feed, "crash1", sent=False
        )
        assert rounds(await observations(settings, feed)) == [(1, "100", "first")]

        clock.advance(5)
        async with Oracle(settings, clock) as oracle:  # start() re-sends the intent
            runner = oracle[feed]
            assert runner.pending is None
            assert runner.last is not None
            assert runner.last.round_id == 2
            assert (await runner.step()).published is None, "105 is already published"
        assert published(feed, "recovered") == 1
        assert rounds(await observations(settings, feed)) == [
            (1, "100", "first"),
            (2, "105", "deviation"),
        ]

    async def test_crash_after_kafka_before_commit(
        self, server: FeedServer, one_feed: OneFeed
    ) -> None:
        feed, settings, clock = await self.publish_then_crash(server, one_feed, "crash2", sent=True)
        clock.advance(5)
        async with Oracle(settings, clock) as oracle:
            runner = oracle[feed]
            assert runner.last is not None
            assert runner.last.round_id == 2
            server.serve("eth", server.price("110"))
            assert (await runner.step()).round_id == 3

        stream = await observations(settings, feed)
        assert [m["round_id"] for m in stream] == [1, 2, 2, 3]
        assert stream[1] == stream[2], "the re-sent round is byte-identical"
        assert rounds(dedupe(stream)) == [
            (1, "100", "first"),
            (2, "105", "deviation"),
            (3, "110", "deviation"),
        ]


class TestSingleton:
    """One replica leads (LeaderLock "oracle:feeds"); another waits and takes over; the
    store refuses a round that is not the next one."""

    async def test_standby_takes_over(self, server: FeedServer, one_feed: OneFeed) -> None:
        feed, settings = one_feed("lead", interval_s=0.05, heartbeat_s=0.3)
        server.serve("eth", server.price("5"))
        producer = AsyncProducer(settings.kafka)
        await producer.start()
        first, second = OracleRuntime(settings, producer), OracleRuntime(settings, producer)
        stop_first, stop_second = asyncio.Event(), asyncio.Event()
        try:
            t1 = asyncio.create_task(first.run(stop_first))
            await wait_until(lambda: first.state == "running", 10, "first leads")
            t2 = asyncio.create_task(second.run(stop_second))
            await asyncio.sleep(0.5)
            assert second.state == "standby"
            stop_first.set()
            await asyncio.wait_for(t1, 10)
            await wait_until(lambda: second.state == "running", 10, "second takes over")
            runner = second.runners[feed]
            await wait_until(
                lambda: runner.last is not None and runner.last.round_id >= 3, 10, "heartbeats"
            )
            stop_second.set()
            await asyncio.wait_for(t2, 10)
        finally:
            stop_first.set()
            stop_second.set()
            await producer.close()
        ids = [m["round_id"] for m in await observations(settings, feed)]
        assert ids == list(range(1, len(ids) + 1)), "one writer at a time: no gap, no repeat"

    async def test_store_refuses_a_second_writer(
        self, server: FeedServer, one_feed: OneFeed
    ) -> None:
        feed, settings = one_feed("fence")
        server.serve("eth", server.price("5"))
        async with Oracle(settings, ManualClock()) as oracle:
            runner = oracle[feed]
            await runner.step()
            assert oracle.publisher is not None
            assert runner.latest is not None
            stale = oracle.publisher.intent(None, runner.latest, "first", oracle.clock.now())
            with pytest.raises(ServiceError, match="not the next round"):
                await oracle.publisher.record(feed, stale)


async def published_round(dsn: str, feed: str) -> tuple[int, datetime | None]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "select round_id, published_at from oracle_feed_state where feed_id = $1", feed
        )
    finally:
        await conn.close()
    return (0, None) if row is None else (row["round_id"], row["published_at"])


class TestDaemon:
    """`dnft oracle` killed with -9 and restarted: no duplicate, the heartbeat on time."""

    async def test_kill9_and_restart(
        self,
        server: FeedServer,
        one_feed: OneFeed,
        tmp_path: Path,
    ) -> None:
        heartbeat = 3.0
        feed, settings = one_feed(
            "daemon", deviation={"relative": 0.01}, heartbeat_s=heartbeat, interval_s=0.2
        )
        port = free_port()
        config = write_settings(tmp_path / "dnft.yaml", settings, http={"port": port})
        dsn = settings.postgres.dsn
        server.serve("eth", server.price("100"))
        daemon = DaemonProcess("oracle", config, port, tmp_path / "oracle.log")
        try:
            daemon.start()

            async def first() -> Any:
                n, at = await published_round(dsn, feed)
                return at if n == 1 else None

            first_at: datetime = await daemon.until(first, 20, "round 1")
            text = await daemon.until(daemon.metrics_text, 5, "metrics")
            assert f'dnft_oracle_observations_total{{feed="{feed}",outcome="accepted"}}' in text
            assert f'dnft_oracle_value_age_seconds{{feed="{feed}"}}' in text
            await asyncio.sleep(0.5)
            daemon.kill9()

            daemon.start()  # restarts well within the heartbeat, reading the same value

            async def second() -> Any:
                n, at = await published_round(dsn, feed)
                return at if n >= 2 else None

            second_at: datetime = await daemon.until(second, 20, "round 2")
            assert daemon.proc is not None
            daemon.proc.send_signal(signal.SIGTERM)
            assert daemon.proc.wait(30) == 0, daemon.log.read_text()[-3000:]
        finally:
            daemon.kill9()
        gap = (second_at - first_at).total_seconds()
        # No earlier than the heartbeat, and on time: within a second of the later of the
        # heartbeat and the moment the restarted process led (on a busy machine starting
        # Python alone can take longer than the heartbeat).
        led_at = leader_since(daemon.log)
        due = max(first_at.timestamp() + heartbeat, led_at.timestamp())
        assert gap >= heartbeat, "the heartbeat came no earlier"
        assert second_at.timestamp() - due < 1.0, (gap, led_at, "the heartbeat came on time")
        stream = await observations(settings, feed)
        assert rounds(stream) == [(1, "100", "first"), (2, "100", "heartbeat")]
        assert datetime.fromisoformat(stream[1]["published_at"]) == second_at.replace(
            microsecond=second_at.microsecond // 1000 * 1000
        ).astimezone(UTC)


def leader_since(log: Path) -> datetime:
    """When the last process writing ``log`` took the leader lock (its structlog line)."""
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    acquired = [e for e in lines if e.get("event") == "leader lock acquired"]
    assert acquired, "no leader lock acquired in the log"
    return datetime.fromisoformat(acquired[-1]["timestamp"].replace("Z", "+00:00"))
