"""Real local servers for integration tests: anvil, tansu (Kafka API) and Postgres, and the
factories most tests build their configuration with.

One of each server per test session, on free 127.0.0.1 ports, started lazily by the first test
that asks and stopped at the end, with the same classes as ``dnft dev up``. A test that
restarts or breaks a server must start its own instance instead (see
tests/integration/test_devservices.py): these are shared. Logs are in the session's
``devservices`` tmp dir.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from dnft.collection import collection_from_mapping
from dnft.config import Settings
from dnft.devservices import AnvilService, PostgresService, TansuService
from dnft.migrations import apply_migrations
from dnft.storage import LocalBlobStore
from regenerator import renderer_for
from tests.support.api import ApiWorld, api_world, with_sample_versions
from tests.support.chain import Deployed, World
from tests.support.indexer import IndexerConfigFor, indexer_config
from tests.support.oracle import FeedServer, OracleSettingsFor, oracle_settings
from tests.support.pusher import PusherConfigFor, Updater, pusher_config
from tests.support.regenerator import VersionMaker, VersionMakerFor, version_maker

S = TypeVar("S", AnvilService, TansuService)


def _running(service: S) -> Iterator[S]:
    """Start ``service``; stop it when the fixture ends."""
    service.start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def devservices_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """State and logs of the session's servers."""
    return tmp_path_factory.mktemp("devservices")


@pytest.fixture(scope="session")
def anvil(devservices_dir: Path) -> Iterator[AnvilService]:
    """anvil with automine, chain id 31337; use ``.rpc_url``, ``.ws_url``, ``.chain_id``."""
    yield from _running(AnvilService(devservices_dir))


@pytest.fixture(scope="session")
def tansu(devservices_dir: Path) -> Iterator[TansuService]:
    """tansu with memory storage (do not restart it: every topic would vanish)."""
    yield from _running(TansuService(devservices_dir))


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
    """A local HTTP feed server whose payloads a test sets (the oracle tests' outside world);
    a test may stop it early (a source going down)."""
    s = FeedServer()
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
def fresh_anvil(tmp_path: Path) -> Iterator[AnvilService]:
    """A chain of this test's own: reorgs and mining there disturb no other test."""
    yield from _running(AnvilService(tmp_path))


@pytest.fixture
def ticking_anvil(tmp_path: Path) -> Iterator[AnvilService]:
    """A chain of this test's own mining a block every 0.25 s (confirmations happen)."""
    yield from _running(AnvilService(tmp_path, block_time=0.25))


# The chain id of ``second_ticking_anvil``: not anvil's default (31337), so that two chains'
# events, versions and transactions can only stay apart by chain id.
SECOND_CHAIN_ID = 31338


@pytest.fixture
def second_ticking_anvil(tmp_path: Path) -> Iterator[AnvilService]:
    """A second chain of this test's own, beside ``ticking_anvil``: chain id
    ``SECOND_CHAIN_ID``, a block every 0.25 s, 256 blocks of state kept (anvil's defaults
    here: ``--prune-history 256``)."""
    state = tmp_path / "second-anvil"
    state.mkdir()
    yield from _running(AnvilService(state, chain_id=SECOND_CHAIN_ID, block_time=0.25))


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
    for name in list(os.environ):
        if name.startswith("DNFT_"):
            monkeypatch.delenv(name)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client session for the test."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture(scope="module")
async def sample_api(
    postgres: PostgresService, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ApiWorld]:
    """`dnft api` serving the sample versions (``with_sample_versions``), no rate limit to
    speak of; one per test module (tests there may add versions of their own tokens)."""
    root = tmp_path_factory.mktemp("api")
    async with api_world(
        postgres, kafka_bootstrap, root, api={"rate_limit": {"burst": 100_000}}
    ) as world:
        await with_sample_versions(world)
        yield world


@pytest.fixture
def indexer_config_for(
    kafka_bootstrap: str, db: str, unique_topic: Callable[[str], str]
) -> IndexerConfigFor:
    """``indexer_config_for(world, **network)``: an indexer config for the session's broker,
    this test's database and one chain-events topic of this test's own (every call)."""
    topic = unique_topic("chain")

    def make(chain: Deployed, **network: Any) -> dict[str, Any]:
        return indexer_config(chain, bootstrap=kafka_bootstrap, dsn=db, topic=topic, **network)

    return make


@pytest.fixture
def pusher_config_for(
    kafka_bootstrap: str, db: str, unique_topic: Callable[[str], str], tmp_path: Path
) -> PusherConfigFor:
    """``pusher_config_for(world, updater, **pusher)``: a pusher config for the session's
    broker and this test's database, reading a new updates topic of its own on each call
    (``raw["kafka"]["topics"]["metadata_updates"]``), the updater's key in ``tmp_path``."""

    def make(world: World, updater: Updater, **pusher: Any) -> dict[str, Any]:
        topic = unique_topic("updates")
        return pusher_config(
            world,
            updater,
            bootstrap=kafka_bootstrap,
            dsn=db,
            topic=topic,
            key_file=tmp_path / f"{topic}.key",
            **pusher,
        )

    return make


@pytest.fixture
def oracle_settings_for(
    kafka_bootstrap: str, db: str, unique_topic: Callable[[str], str]
) -> OracleSettingsFor:
    """``oracle_settings_for(*feeds, networks=...)``: oracle settings for the session's
    broker, this test's database and one observations topic of this test's own."""
    topic = unique_topic("oracle")

    def make(*feeds: dict[str, Any], networks: list[dict[str, Any]] | None = None) -> Settings:
        return oracle_settings(
            list(feeds), bootstrap=kafka_bootstrap, dsn=db, topic=topic, networks=networks
        )

    return make


@pytest.fixture
def version_maker_for(
    db: str, kafka_bootstrap: str, unique_topic: Callable[[str], str], tmp_path: Path
) -> VersionMakerFor:
    """``async with version_maker_for(rules) as maker:`` the regenerator's planner and render
    worker (procedural art) for a collection of ``rules`` on this test's database, blobs in
    ``tmp_path``, jobs and updates on topics of their own."""

    def make(
        rules: dict[str, Any], *, pool_size: int = 3, quiet_s: float = 0.5
    ) -> AbstractAsyncContextManager[VersionMaker]:
        collection = collection_from_mapping(rules)
        return version_maker(
            db,
            kafka_bootstrap,
            collection,
            renderer_for(collection),
            store=LocalBlobStore(tmp_path / "blobs"),
            jobs_topic=unique_topic("jobs"),
            updates_topic=unique_topic("updates"),
            pool_size=pool_size,
            quiet_s=quiet_s,
        )

    return make
