"""The pusher's side of pusher tests: a funded updater key, its configuration, update messages
on Kafka (each version recorded in ``token_versions`` first, as the render worker records a
version before announcing it: the pusher announces only recorded versions), and an in-process
pusher (``tests.support.pushed`` reads what it did)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections.abc import AsyncIterator, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import orjson
from eth_account import Account
from eth_utils.crypto import keccak
from web3.types import Wei

from dnft.config import KafkaSettings, Settings
from dnft.contracts import transact
from publisher.pusher import PusherRuntime, load_signer
from schemas import METADATA_UPDATE_V1
from tests.support.chain import COLLECTION_ABI, World
from tests.support.kafka import produce
from tests.support.rules import FED, collection_rules
from tests.support.wait import wait_for

UPDATER_ROLE = keccak(text="UPDATER_ROLE")
# The collection pusher_config binds to the world's contract (its rules file names it).
TEST_COLLECTION = "test"
# The database of each pusher config, by its updates topic: where produce_updates records the
# versions it announces.
_VERSIONS_DSN: dict[str, str] = {}


@dataclass
class Updater:
    key_hex: str  # 64 hex digits: a throwaway key made for one test
    address: str


async def funded_updater(world: World) -> Updater:
    """A fresh key holding UPDATER_ROLE and 10 ETH (nonces no other test touches)."""
    account = Account.create()
    await world.signer.transact(world.w3, {"to": account.address, "value": Wei(10 * 10**18)})
    await transact(
        world.w3, world.collection, "grantRole", UPDATER_ROLE, account.address, sender=world.signer
    )
    return Updater(account.key.hex().removeprefix("0x"), account.address)


def cid_of(token_id: int, version: int) -> str:
    digest = hashlib.sha256(f"{token_id}:{version}".encode()).digest()
    return "b" + base64.b32encode(digest).decode().lower().rstrip("=")


def update_message(world: World, token_id: int, version: int) -> dict[str, Any]:
    sha = hashlib.sha256(f"{token_id}:{version}".encode()).hexdigest()
    return {
        "schema": METADATA_UPDATE_V1,
        "collection": "test",
        "chain_id": world.chain_id,
        "contract": world.address.lower(),
        "token_id": str(token_id),
        "version": version,
        "metadata_uri": f"http://127.0.0.1:8000/tokens/{token_id}/versions/{version}",
        "metadata_sha256": sha,
        "metadata_cid": cid_of(token_id, version),
        "image_sha256": sha,
        "created_at": datetime.now(UTC).isoformat(),
    }


def produce_updates(
    kafka: KafkaSettings,
    world: World,
    updates: Iterable[tuple[int, int]],
    *,
    collection: str = TEST_COLLECTION,
) -> int:
    """An update message per (token, version) on ``kafka``'s metadata-updates topic, keyed by
    token as the render worker keys them, acknowledged; returns how many were sent. Each
    version is first recorded in ``token_versions`` of ``collection`` (with the CID the
    message carries) in the database of the pusher config reading that topic."""
    updates = list(updates)
    dsn = _VERSIONS_DSN.get(kafka.topics.metadata_updates)
    if dsn is None:
        raise LookupError(f"no pusher_config reads {kafka.topics.metadata_updates}")
    record_versions(dsn, updates, collection)
    return produce_unrecorded(kafka, [update_message(world, t, v) for t, v in updates])


def produce_unrecorded(kafka: KafkaSettings, messages: Iterable[dict[str, Any]]) -> int:
    """Update ``messages`` straight to Kafka, keyed by token, with no version recorded: what
    anyone who can reach the broker could write."""
    return produce(
        kafka.bootstrap_servers[0],
        kafka.topics.metadata_updates,
        messages,
        key=lambda m: f"{m['chain_id']}:{m['contract']}:{m['token_id']}",
    )


def record_versions(dsn: str, updates: Iterable[tuple[int, int]], collection: str) -> None:
    """A ``token_versions`` row per (token, version) of ``collection``, with the metadata CID
    ``update_message`` gives it (content fields made up; an existing row is kept). Blocking,
    like ``produce``: it runs on its own event loop in a thread of its own."""
    rows = [
        (collection, token, version, f"pushed-{token}-{version}", cid_of(token, version))
        for token, version in updates
    ]

    async def insert() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.executemany(
                "insert into token_versions (collection, token_id, version, state_hash, state, "
                "image_sha256, image_cid, metadata_sha256, metadata_cid, metadata, "
                "triggered_by) values ($1, $2, $3, $4, '{}'::jsonb, $4, $5, $4, $5, "
                "'{}'::jsonb, '[]'::jsonb) on conflict do nothing",
                rows,
            )
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, insert()).result()


def write_key(path: Path, updater: Updater) -> Path:
    path.write_text(updater.key_hex + "\n")
    os.chmod(path, 0o600)
    return path


def pusher_config(
    world: World,
    updater: Updater,
    *,
    bootstrap: str,
    dsn: str,
    topic: str,
    key_file: Path,
    mode: str = "erc4906",
    http_port: int = 0,
    **pusher: Any,
) -> dict[str, Any]:
    """A dnft.yaml (as a mapping) pushing ``world``'s updates from ``topic`` (consumer group
    ``g-TOPIC``) signed by ``updater``, whose key is written to ``key_file``; ``pusher``
    overrides keys of the pusher section. The collection ``TEST_COLLECTION`` is bound to the
    contract (its rules file is written beside ``key_file``), and ``produce_updates`` on
    ``topic`` records its versions in ``dsn``."""
    rules = key_file.with_suffix(".rules.json")  # JSON is YAML
    rules.write_bytes(
        orjson.dumps(
            collection_rules(FED, salt="pusher-test", levels={0: "egg"}, prompt="a creature")
            | {"name": TEST_COLLECTION}
        )
    )
    _VERSIONS_DSN[topic] = dsn
    section: dict[str, Any] = {
        "group": f"g-{topic}",
        "collections": [{"contract": "collection", "mode": mode}],
        "signer": {"key_file": str(write_key(key_file, updater))},
        "window_s": 0.5,
        "confirmations": 2,
        "poll_interval_s": 0.1,
        "replace_after_s": 30,
        "balance_every_s": 1,
    }
    section.update(pusher)
    return {
        "log_level": "debug",
        "http": {"port": http_port},
        "networks": [
            {
                "name": "local",
                "chain_id": world.chain_id,
                "rpc_urls": [world.rpc_url],
                "request_timeout_s": 5,
            }
        ],
        "contracts": [
            {
                "name": "collection",
                "network": "local",
                "address": world.address,
                "abi": COLLECTION_ABI,
            }
        ],
        "kafka": {
            "bootstrap_servers": [bootstrap],
            "topics": {"metadata_updates": topic, "dead_letter": f"{topic}.dlq"},
            "partitions": 3,
            "consumer": {
                # A killed member is evicted after the session timeout, and tansu holds a
                # join for half of it: short values keep restarts quick.
                "session_timeout_ms": 3000,
                "heartbeat_interval_ms": 1000,
                "max_poll_interval_ms": 10000,
            },
        },
        "postgres": {"dsn": dsn},
        "collections": [{"file": str(rules)}],
        "pusher": section,
    }


@asynccontextmanager
async def running_pusher(settings: Settings) -> AsyncIterator[PusherRuntime]:
    """``dnft pusher`` in this process, as its daemon wires it, once it is running (30 s at
    most); leaving the block is the daemon's clean stop (30 s at most)."""
    runtime = PusherRuntime(settings, load_signer(settings))
    stopping = asyncio.Event()
    task = asyncio.create_task(runtime.run(stopping))

    async def running() -> bool:
        return runtime.state == "running"

    try:
        await wait_for("pusher running", running, 30)
        yield runtime
    finally:
        stopping.set()
        await asyncio.wait_for(task, 30)


class PusherConfigFor(Protocol):
    """The ``pusher_config_for`` fixture: :func:`pusher_config` with the test's broker,
    database, a new topic and a key file filled in."""

    def __call__(self, world: World, updater: Updater, **pusher: Any) -> dict[str, Any]: ...
