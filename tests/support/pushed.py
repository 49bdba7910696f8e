"""What a pusher did, read independently: announcements on the canonical chain (raw
eth_getLogs, decoded here), the signer's nonce, and the pusher's outbox in Postgres."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any, Literal

import asyncpg
from eth_utils.crypto import keccak

from dnft import metrics
from tests.support.chain import World
from tests.support.wait import wait_for

METADATA_UPDATE = "0x" + keccak(text="MetadataUpdate(uint256)").hex()
BATCH_METADATA_UPDATE = "0x" + keccak(text="BatchMetadataUpdate(uint256,uint256)").hex()


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


async def nonce(world: World, address: str, block: Literal["latest", "pending"] = "latest") -> int:
    """How many transactions ``address`` has sent (mined, or also pending)."""
    return int(
        await world.w3.eth.get_transaction_count(world.w3.to_checksum_address(address), block)
    )


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


async def wait_confirmed(dsn: str, count: int, timeout_s: float) -> None:
    """Wait until at least ``count`` updates of the pusher's outbox are confirmed."""

    async def done() -> bool:
        return (await outbox_counts(dsn))["confirmed"] >= count

    await wait_for(f"{count} confirmed updates", done, timeout_s)


async def query(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def refused(reason: str) -> float:
    """How many updates this process's pusher refused for ``reason`` so far."""
    value = metrics.registry.get_sample_value(
        "dnft_pusher_updates_refused_total", {"reason": reason}
    )
    return value or 0.0
