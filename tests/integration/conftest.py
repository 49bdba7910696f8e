"""Real local servers for integration tests: anvil, tansu (Kafka API) and Postgres.

One of each per test session, on free 127.0.0.1 ports, started lazily by the first test that
asks and stopped at the end, with the same classes as ``dnft dev up``. A test that restarts or
breaks a server must start its own instance instead (see tests/integration/test_devservices.py):
these are shared. Logs are in the session's ``devservices`` tmp dir.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from dnft.devservices import AnvilService, PostgresService, TansuService
from dnft.migrations import apply_migrations
from tests.support.oracle import FeedServer


@pytest.fixture(scope="session")
def devservices_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """State and logs of the session's servers."""
    return tmp_path_factory.mktemp("devservices")


@pytest.fixture(scope="session")
def anvil(devservices_dir: Path) -> Iterator[AnvilService]:
    """anvil with automine, chain id 31337; use ``.rpc_url``, ``.ws_url``, ``.chain_id``."""
    service = AnvilService(devservices_dir)
    service.start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def tansu(devservices_dir: Path) -> Iterator[TansuService]:
    """tansu with memory storage (do not restart it: every topic would vanish)."""
    service = TansuService(devservices_dir)
    service.start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(tansu: TansuService) -> str:
    """``127.0.0.1:PORT`` of the session's broker."""
    return tansu.bootstrap


@pytest.fixture(scope="session")
def postgres(devservices_dir: Path) -> Iterator[PostgresService]:
    """A throwaway Postgres cluster, deleted after the session."""
    service = PostgresService(devservices_dir)
    service.start()
    yield service
    service.destroy()


@pytest.fixture(scope="session")
def postgres_dsn(postgres: PostgresService) -> str:
    """DSN of database ``dnft`` in the session's fresh cluster."""
    return postgres.dsn


@pytest.fixture
def fresh_db_dsn(postgres: PostgresService) -> Iterator[str]:
    """DSN of an empty database made for this test, dropped (clients cut off) afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    dsn = postgres.create_database(name)
    yield dsn
    postgres.drop_database(name)


@pytest.fixture
async def db(fresh_db_dsn: str) -> str:
    """DSN of an empty database made for this test, with dnft's migrations applied."""
    await apply_migrations(fresh_db_dsn)
    return fresh_db_dsn


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    """A local HTTP feed server whose payloads a test sets (the oracle tests' outside world)."""
    s = FeedServer()
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
def fresh_anvil(tmp_path: Path) -> Iterator[AnvilService]:
    """A chain of this test's own: reorgs and mining there disturb no other test."""
    service = AnvilService(tmp_path)
    service.start()
    yield service
    service.stop()


@pytest.fixture
def ticking_anvil(tmp_path: Path) -> Iterator[AnvilService]:
    """A chain of this test's own mining a block every 0.25 s (confirmations happen)."""
    service = AnvilService(tmp_path, block_time=0.25)
    service.start()
    yield service
    service.stop()


@pytest.fixture
def unique_topic(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """A factory of topic names no other test or run uses: ``unique_topic("blocks")``."""
    test = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name)[:80]

    def make(prefix: str) -> str:
        return f"{prefix}.{test}.{uuid.uuid4().hex[:8]}"

    return make


@pytest.fixture
def no_dnft_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands run in-process read DNFT_* overrides from the environment: none leak in."""
    import os

    for name in list(os.environ):
        if name.startswith("DNFT_"):
            monkeypatch.delenv(name)
