"""Helpers for pusher tests: a chain of its own, a funded updater key, update messages, and
independent reads of what the contract announced (raw eth_getLogs, decoded here)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from eth_account import Account
from eth_utils.crypto import keccak
from kafka import KafkaProducer

from dnft.contracts import transact
from schemas import METADATA_UPDATE_V1
from tests.support.chain import World, make_world

METADATA_UPDATE = "0x" + keccak(text="MetadataUpdate(uint256)").hex()
BATCH_METADATA_UPDATE = "0x" + keccak(text="BatchMetadataUpdate(uint256,uint256)").hex()
UPDATER_ROLE = keccak(text="UPDATER_ROLE")


@dataclass
class Updater:
    key_hex: str  # 64 hex digits: a throwaway key made for one test
    address: str


async def funded_updater(world: World) -> Updater:
    """A fresh key holding UPDATER_ROLE and 10 ETH (nonces no other test touches)."""
    account = Account.create()
    await world.signer.transact(world.w3, {"to": account.address, "value": 10 * 10**18})
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


def produce(bootstrap: str, topic: str, messages: Iterable[dict[str, Any]]) -> int:
    """Send and flush (acknowledged by the broker); returns how many were sent."""
    producer = KafkaProducer(bootstrap_servers=[bootstrap], acks="all")
    count = 0
    try:
        for m in messages:
            key = f"{m['chain_id']}:{m['contract']}:{m['token_id']}".encode()
            producer.send(topic, orjson.dumps(m), key=key)
            count += 1
        producer.flush(30)
    finally:
        producer.close()
    return count


def pusher_config(
    *,
    rpc_url: str,
    chain_id: int,
    address: str,
    bootstrap: str,
    dsn: str,
    topic: str,
    key_file: Path,
    group: str,
    mode: str = "erc4906",
    http_port: int = 0,
    **pusher: Any,
) -> dict[str, Any]:
    section: dict[str, Any] = {
        "group": group,
        "collections": [{"contract": "collection", "mode": mode}],
        "signer": {"key_file": str(key_file)},
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
            {"name": "local", "chain_id": chain_id, "rpc_urls": [rpc_url], "request_timeout_s": 5}
        ],
        "contracts": [
            {
                "name": "collection",
                "network": "local",
                "address": address,
                "abi": str(Path("schemas/abi/DynamicCollection.json").resolve()),
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


async def announcements(world: World) -> list[tuple[str, int, int]]:
    """(tx hash, first, last) of every MetadataUpdate / BatchMetadataUpdate on the canonical
    chain, read with eth_getLogs and decoded by hand."""
    logs = await world.rpc(
        "eth_getLogs",
        [
            {
                "address": world.address,
                "fromBlock": "0x0",
                "toBlock": "latest",
                "topics": [[METADATA_UPDATE, BATCH_METADATA_UPDATE]],
            }
        ],
    )
    out = []
    for entry in logs["result"]:
        data = bytes.fromhex(entry["data"][2:])
        words = [int.from_bytes(data[i : i + 32], "big") for i in range(0, len(data), 32)]
        first, last = (words[0], words[0]) if entry["topics"][0] == METADATA_UPDATE else words
        out.append((entry["transactionHash"], first, last))
    return out


def coverage(events: Iterable[tuple[str, int, int]]) -> Counter[int]:
    """How many announcements cover each token."""
    counts: Counter[int] = Counter()
    for _, first, last in events:
        counts.update(range(first, last + 1))
    return counts


async def wait_for(what: str, check: Any, timeout_s: float, every_s: float = 0.1) -> Any:
    """Await ``check()`` until it returns something truthy; raise after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(every_s)


async def outbox_counts(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "select count(*) as updates, count(confirmed_at) as confirmed, "
            "count(failed_at) as failed from pusher_updates"
        )
        pushes = await conn.fetchval("select count(*) from pusher_pushes")
        txs = await conn.fetchval("select count(*) from pusher_transactions")
    finally:
        await conn.close()
    assert row is not None
    return {**dict(row), "pushes": pushes, "txs": txs}


async def query(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def new_world(rpc_url: str, mint_count: int = 0) -> World:
    return await make_world(rpc_url, mint_count)


def write_key(path: Path, updater: Updater) -> Path:
    path.write_text(updater.key_hex + "\n")
    os.chmod(path, 0o600)
    return path
