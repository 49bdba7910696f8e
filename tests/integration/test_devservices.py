"""The dev services for real: ``dnft dev up/status/env/down`` and restarts of tansu and Postgres."""

from __future__ import annotations

import asyncio
import importlib.util
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from dnft.devservices import (
    AnvilService,
    PostgresService,
    TansuService,
    down,
    load_state,
    pid_running,
    rpc_call,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
HAVE_MOTO_SERVER = all(importlib.util.find_spec(name) for name in ("moto", "flask"))


async def dnft_dev(*args: str, state_dir: Path) -> tuple[int, str, str]:
    """Run ``python -m dnft dev ARGS --state-dir DIR``; return (status, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dnft",
        "dev",
        *args,
        "--state-dir",
        str(state_dir),
        cwd=REPO_ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    # A detached service holding our pipe would make this hang: the timeout catches that.
    out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def kafka_topics(bootstrap: str) -> set[str]:
    """A metadata request through kafka-python (blocking)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        return set(consumer.topics())
    finally:
        consumer.close()


def create_topic(bootstrap: str, topic: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        admin.close()


def produce(bootstrap: str, topic: str, value: bytes) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        producer.send(topic, value).get(timeout=10)
    finally:
        producer.close()


def read_all(bootstrap: str, topic: str, expect: int, timeout: float = 10.0) -> list[bytes]:
    """Values of partition 0 from the beginning, without a group (no join delay on tansu)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        values: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(values) < expect and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                values += [record.value for record in records]
        return values
    finally:
        consumer.close()


async def select_one(dsn: str) -> int:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        value: int = await conn.fetchval("select 1")
        return value
    finally:
        await conn.close()


@pytest.fixture
def dev_state_dir(tmp_path: Path) -> Iterator[Path]:
    """A state dir for ``dnft dev``; whatever a failed test left running is stopped after it."""
    state_dir = tmp_path / "dev"
    yield state_dir
    down(state_dir)


class TestDevCommands:
    """``dnft dev`` as a user runs it, each command its own process."""

    async def test_up_status_env_down(self, dev_state_dir: Path) -> None:
        code, out, err = await dnft_dev("up", state_dir=dev_state_dir)
        assert code == 0, err
        assert "ready:" in out

        code, out, err = await dnft_dev("status", state_dir=dev_state_dir)
        assert code == 0, out + err
        lines = out.splitlines()
        assert [line.split()[0] for line in lines] == ["anvil", "tansu", "postgres"]
        assert all(line.split()[-1] == "alive" for line in lines), out

        code, out, err = await dnft_dev("env", state_dir=dev_state_dir)
        assert code == 0, err
        env = dict(
            shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in out.splitlines()
        )
        assert set(env) == {
            "DNFT_DEV_RPC_URL",
            "DNFT_DEV_WS_URL",
            "DNFT_DEV_KAFKA",
            "DNFT_DEV_PG_DSN",
            "DNFT_DEV_CHAIN_ID",
        }
        # Each endpoint really answers.
        chain_id = await asyncio.to_thread(rpc_call, env["DNFT_DEV_RPC_URL"], "eth_chainId")
        assert chain_id == hex(int(env["DNFT_DEV_CHAIN_ID"]))
        assert isinstance(await asyncio.to_thread(kafka_topics, env["DNFT_DEV_KAFKA"]), set)
        assert await select_one(env["DNFT_DEV_PG_DSN"]) == 1

        # A second ``up`` must not start a second set.
        code, _out, err = await dnft_dev("up", state_dir=dev_state_dir)
        assert code == 1
        assert "already running" in err

        state = load_state(dev_state_dir)
        assert state is not None
        recorded = [p for service in state.services for p in service.processes]
        assert {p.role for p in recorded} == {"anvil", "tansu", "postmaster"}

        code, out, err = await dnft_dev("down", state_dir=dev_state_dir)
        assert code == 0, err
        assert not [p.pid for p in recorded if pid_running(p.pid, p.ticks)]
        assert load_state(dev_state_dir) is None
        code, _out, _err = await dnft_dev("status", state_dir=dev_state_dir)
        assert code == 1


class TestSessionFixtures:
    """The shared fixtures other integration tests use."""

    async def test_endpoints_answer(
        self,
        anvil: AnvilService,
        kafka_bootstrap: str,
        postgres_dsn: str,
        fresh_db_dsn: str,
        unique_topic: Callable[[str], str],
    ) -> None:
        assert await asyncio.to_thread(rpc_call, anvil.rpc_url, "eth_chainId") == hex(31337)
        assert anvil.ws_url.startswith("ws://127.0.0.1:")
        topic = unique_topic("fixture")
        assert topic != unique_topic("fixture")
        await asyncio.to_thread(create_topic, kafka_bootstrap, topic)
        assert topic in await asyncio.to_thread(kafka_topics, kafka_bootstrap)
        assert fresh_db_dsn != postgres_dsn
        assert await select_one(postgres_dsn) == 1
        assert await select_one(fresh_db_dsn) == 1


class TestRestart:
    """Fault tests restart servers mid-run: same port, and data kept where storage allows."""

    async def test_postgres_restart_keeps_port_and_data(self, tmp_path: Path) -> None:
        service = PostgresService(tmp_path)
        service.start()
        try:
            dsn = service.dsn
            conn = await asyncpg.connect(dsn)
            await conn.execute("create table kept (v int); insert into kept values (42)")
            await conn.close()

            service.restart()
            assert service.is_alive()
            assert service.dsn == dsn
            conn = await asyncpg.connect(dsn)
            try:
                assert await conn.fetchval("select v from kept") == 42
            finally:
                await conn.close()
        finally:
            service.destroy()
        assert not service.is_alive()

    def test_tansu_memory_restart_loses_topics(self, tmp_path: Path) -> None:
        service = TansuService(tmp_path)
        service.start()
        try:
            create_topic(service.bootstrap, "lost")
            assert "lost" in kafka_topics(service.bootstrap)
            bootstrap = service.bootstrap
            service.restart()
            assert service.bootstrap == bootstrap
            assert "lost" not in kafka_topics(bootstrap)  # memory storage: expected
        finally:
            service.stop()

    @pytest.mark.skipif(not HAVE_MOTO_SERVER, reason="durable tansu needs moto[server]")
    def test_tansu_durable_restart_keeps_records(self, tmp_path: Path) -> None:
        service = TansuService(tmp_path, durable=True)
        service.start()
        try:
            create_topic(service.bootstrap, "kept")
            produce(service.bootstrap, "kept", b"before restart")
            moto_pids = [p.pid for p in service.processes if p.role == "moto"]
            service.restart()
            assert [p.pid for p in service.processes if p.role == "moto"] == moto_pids
            produce(service.bootstrap, "kept", b"after restart")
            values = read_all(service.bootstrap, "kept", expect=2)
            assert values == [b"before restart", b"after restart"]
        finally:
            service.stop()
        assert not service.is_alive()
