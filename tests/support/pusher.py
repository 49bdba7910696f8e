"""The pusher's side of pusher tests: a funded updater key, its configuration, update messages
on Kafka, and an in-process pusher (``tests.support.pushed`` reads what it did)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from eth_account import Account
from eth_utils.crypto import keccak
from web3.types import Wei

from dnft.config import KafkaSettings, Settings
from dnft.contracts import transact
from publisher.pusher import PusherRuntime, load_signer
from schemas import METADATA_UPDATE_V1
from tests.support.chain import COLLECTION_ABI, World
from tests.support.kafka import produce
from tests.support.wait import wait_for

UPDATER_ROLE = keccak(text="UPDATER_ROLE")


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


def produce_updates(kafka: KafkaSettings, world: World, updates: Iterable[tuple[int, int]]) -> int:
    """An update message per (token, version) on ``kafka``'s metadata-updates topic, keyed by
    token as the render worker keys them, acknowledged; returns how many were sent."""
    messages = [update_message(world, token, version) for token, version in updates]
    return produce(
        kafka.bootstrap_servers[0],
        kafka.topics.metadata_updates,
        messages,
        key=lambda m: f"{m['chain_id']}:{m['contract']}:{m['token_id']}",
    )


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
    overrides keys of the pusher section."""
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
