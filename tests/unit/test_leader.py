"""Leader leases without a server: the fence's arithmetic, the heartbeat's failure, stepping
down, the lock session's server-side bounds, and DSN redaction. The real session ending
under a paused leader is tests/integration/test_leases.py."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from dnft import metrics
from dnft.config import PostgresSettings, settings_from_mapping
from dnft.db import redact_dsn
from dnft.errors import ConfigError, ServiceError
from dnft.leader import LEASE_MARGIN, LeaderLock, LeaseLost, lease_server_settings
from tests.unit.test_settings import base, key_of


class FakeConnection:
    """What LeaderLock asks of an asyncpg connection; ``fail`` makes the next query raise."""

    def __init__(self) -> None:
        self.closed = False
        self.terminated = False
        self.queries: list[str] = []
        self.fail: BaseException | None = None
        self.delay_s = 0.0

    def is_closed(self) -> bool:
        return self.closed

    def terminate(self) -> None:
        self.terminated = self.closed = True

    async def close(self, **_: Any) -> None:
        self.closed = True

    async def fetchval(self, query: str, *args: Any, **_: Any) -> Any:
        self.queries.append(query)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail is not None:
            raise self.fail
        return True

    async def execute(self, query: str, *args: Any, **_: Any) -> str:
        self.queries.append(query)
        return "SELECT 1"


class Clock:
    """time.monotonic for the lease, moved by the test (a pause is a jump)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def conn(monkeypatch: pytest.MonkeyPatch) -> FakeConnection:
    fake = FakeConnection()

    async def connect(settings: PostgresSettings, **_: Any) -> FakeConnection:
        return fake

    monkeypatch.setattr("dnft.leader.connect", connect)
    return fake


def settings(lease_s: float = 3.0) -> PostgresSettings:
    return PostgresSettings(dsn="postgresql://u@h/db", lease_s=lease_s)


def lost_count(scope: str) -> float:
    value = metrics.registry.get_sample_value(
        "dnft_leader_lease_lost_total", {"daemon": "test", "scope": scope}
    )
    return value or 0.0


def leading(scope: str) -> float | None:
    return metrics.registry.get_sample_value(
        "dnft_daemon_leader", {"daemon": "test", "scope": scope}
    )


class TestFence:
    """check() passes only inside the lease measured from the last good heartbeat."""

    async def test_valid_until_lease_minus_margin_then_lost(
        self, clock: Clock, conn: FakeConnection
    ) -> None:
        lock = LeaderLock(settings(lease_s=10), "test", "fence", clock=clock)
        assert await lock.try_acquire()
        assert leading("fence") == 1
        clock.now += 10 * (1 - LEASE_MARGIN) - 0.01
        lock.check()  # still inside
        clock.now += 0.02
        with pytest.raises(LeaseLost, match="lease ran out"):
            lock.check()
        assert conn.terminated, "a lost lease drops the session (the lock goes with it)"
        assert leading("fence") == 0
        await lock.release()

    async def test_a_pause_longer_than_the_lease_fences_every_later_effect(
        self, clock: Clock, conn: FakeConnection
    ) -> None:
        lock = LeaderLock(settings(), "test", "pause", clock=clock)
        before = lost_count("pause")
        assert await lock.try_acquire()
        clock.now += 60  # SIGSTOP, then SIGCONT a minute later
        for _ in range(3):
            with pytest.raises(LeaseLost):
                lock.check()
        assert lost_count("pause") == before + 1, "counted once, however often it is checked"
        with pytest.raises(LeaseLost):
            async with lock.session():
                pass
        await lock.release()

    async def test_not_leading_is_fenced(self, clock: Clock) -> None:
        lock = LeaderLock(settings(), "test", "idle", clock=clock)
        with pytest.raises(LeaseLost, match="not leading"):
            lock.check()

    async def test_closed_connection_is_lost(self, clock: Clock, conn: FakeConnection) -> None:
        lock = LeaderLock(settings(), "test", "closed", clock=clock)
        assert await lock.try_acquire()
        conn.closed = True  # the server ended the session
        with pytest.raises(LeaseLost, match="connection is closed"):
            lock.check()
        await lock.release()

    def test_lease_lost_is_a_service_error(self) -> None:
        # Runtimes stop on ServiceError (the daemon exits and restarts as a standby).
        assert issubclass(LeaseLost, ServiceError)


class TestHeartbeat:
    """The heartbeat renews the lease, and its first failure makes the daemon step down."""

    async def test_heartbeats_renew_the_lease(self, conn: FakeConnection) -> None:
        lock = LeaderLock(settings(lease_s=3), "test", "renew")
        assert await lock.try_acquire()
        await asyncio.sleep(3.5)  # past one lease: only heartbeats keep it valid
        lock.check()
        assert conn.queries.count("select 1") >= 2
        await lock.release()

    async def test_failed_heartbeat_loses_the_lease_and_wakes_the_watch(
        self, conn: FakeConnection
    ) -> None:
        lock = LeaderLock(settings(lease_s=3), "test", "beat")
        before = lost_count("beat")
        assert await lock.try_acquire()
        conn.fail = asyncpg.InterfaceError("connection is closed")
        with pytest.raises(LeaseLost, match="heartbeat failed"):
            await asyncio.wait_for(lock.watch(), 3)
        assert lost_count("beat") == before + 1
        assert leading("beat") == 0
        with pytest.raises(LeaseLost):
            lock.check()
        await lock.release()

    async def test_slow_heartbeat_times_out(self, conn: FakeConnection) -> None:
        lock = LeaderLock(settings(lease_s=3), "test", "slow")
        assert await lock.try_acquire()
        conn.delay_s = 30  # a server that stopped answering
        with pytest.raises(LeaseLost, match="TimeoutError"):
            await asyncio.wait_for(lock.watch(), 5)
        await lock.release()

    async def test_while_leading_cancels_work_when_the_lease_is_lost(
        self, conn: FakeConnection
    ) -> None:
        lock = LeaderLock(settings(lease_s=3), "test", "cancel")
        assert await lock.try_acquire()
        cancelled = asyncio.Event()

        async def work() -> None:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        conn.fail = OSError("connection reset")
        with pytest.raises(LeaseLost):
            await asyncio.wait_for(lock.while_leading(work()), 5)
        assert cancelled.is_set()
        await lock.release()

    async def test_while_leading_returns_the_work_result(self, conn: FakeConnection) -> None:
        lock = LeaderLock(settings(), "test", "result")
        assert await lock.try_acquire()

        async def work() -> int:
            return 7

        assert await lock.while_leading(work()) == 7
        await lock.release()

    async def test_watch_returns_when_stopping(self, conn: FakeConnection) -> None:
        lock = LeaderLock(settings(), "test", "stop")
        assert await lock.try_acquire()
        stopping = asyncio.Event()
        stopping.set()
        await asyncio.wait_for(lock.watch(stopping), 1)
        await lock.release()


class TestLockSession:
    """The server ends the lock's session when its leader stops answering."""

    def test_server_settings_follow_the_lease(self) -> None:
        s = lease_server_settings(
            PostgresSettings(dsn="postgresql://u@h/db", lease_s=9, command_timeout_s=20), "x"
        )
        assert s["idle_session_timeout"] == "9000"
        assert s["idle_in_transaction_session_timeout"] == "9000"
        assert s["tcp_user_timeout"] == "9000"
        assert s["statement_timeout"] == "20000"

    @pytest.mark.parametrize("lease_s", [3, 4, 5, 9, 10, 11, 15, 30, 61.5])
    def test_server_never_ends_a_session_the_leader_counts_valid(self, lease_s: float) -> None:
        # Every server-side bound counts from the leader's last packet, which followed the
        # heartbeat's start; the leader counts its lease valid for lease * (1 - margin) from
        # that start. Keepalives that gave up sooner would free the lock for a standby while
        # the old leader still acts.
        s = lease_server_settings(PostgresSettings(dsn="postgresql://u@h/db", lease_s=lease_s), "x")
        valid_s = lease_s * (1 - LEASE_MARGIN)
        idle, interval, count = (
            int(s["tcp_keepalives_idle"]),
            int(s["tcp_keepalives_interval"]),
            int(s["tcp_keepalives_count"]),
        )
        assert idle + count * interval >= lease_s > valid_s
        assert int(s["idle_session_timeout"]) / 1000 >= lease_s
        assert int(s["tcp_user_timeout"]) / 1000 >= lease_s


class TestLeaseSettings:
    """postgres.lease_s and the timeouts: bounds checked, errors name the key."""

    def test_defaults(self) -> None:
        s = PostgresSettings(dsn="postgresql://u@h/db")
        assert (s.lease_s, s.heartbeat_s) == (10.0, 10.0 / 3)
        assert s.command_timeout_s > 0
        assert s.connect_timeout_s > 0
        assert s.migration_lock_timeout_s > 0

    @pytest.mark.parametrize(
        ("key", "value"),
        [
            ("lease_s", 2.9),
            ("command_timeout_s", 0),
            ("connect_timeout_s", -1),
            ("migration_lock_timeout_s", 0),
        ],
    )
    def test_out_of_bounds_names_the_key(self, key: str, value: float) -> None:
        raw = base()
        raw["postgres"][key] = value
        assert key_of(raw) == f"postgres.{key}"

    def test_error_is_a_config_error(self) -> None:
        raw = base()
        raw["postgres"]["lease_s"] = 1
        with pytest.raises(ConfigError, match=r"postgres\.lease_s"):
            settings_from_mapping(raw, {})


class TestRedactDsn:
    """No password survives redaction, in the user info or the query string."""

    @pytest.mark.parametrize(
        ("dsn", "redacted"),
        [
            ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
            ("postgresql://u@h/db", "postgresql://u@h/db"),
            ("postgresql://h/db?password=s3cret", "postgresql://h/db?password=***"),
            (
                "postgresql://h/db?sslmode=require&password=s3cret&application_name=x",
                "postgresql://h/db?sslmode=require&password=***&application_name=x",
            ),
            ("postgresql://h/db?password=a%40b%26c", "postgresql://h/db?password=***"),
            ("postgresql://h/db?pass%77ord=s3cret", "postgresql://h/db?pass%77ord=***"),
            ("postgresql://h/db?PASSWORD=s3cret", "postgresql://h/db?PASSWORD=***"),
            ("postgresql://h/db?sslpassword=s3cret", "postgresql://h/db?sslpassword=***"),
            ("postgresql://u:pw@h/db?password=a@b", "postgresql://u:***@h/db?password=***"),
            ("postgresql://h1:1,h2:2/db?user=u", "postgresql://h1:1,h2:2/db?user=u"),
        ],
    )
    def test_redacts(self, dsn: str, redacted: str) -> None:
        assert redact_dsn(dsn) == redacted
        for secret in ("pw", "s3cret", "a%40b"):
            if secret in dsn:
                assert secret not in redact_dsn(dsn).replace("***", "")
