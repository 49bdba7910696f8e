"""Where each network's indexer stands, for ``dnft status``: chain head vs checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from dnft.config import NetworkSettings
from dnft.rpc import RetryPolicy, RpcClient

# Status asks once and moves on: a node that does not answer quickly is shown as such.
_STATUS_RETRY = RetryPolicy(max_attempts=2, budget_s=5.0)


@dataclass(frozen=True, slots=True)
class CheckpointRow:
    network: str
    block_number: int
    updated_at: datetime


async def chain_head(network: NetworkSettings, timeout_s: float = 5.0) -> int:
    """The node's latest block number; raises RpcError when no URL answers."""
    async with RpcClient(network.rpc_urls, timeout_s=timeout_s, retry=_STATUS_RETRY) as client:
        return int(await client.call("eth_blockNumber", []), 16)


async def checkpoints(conn: asyncpg.Connection) -> dict[str, CheckpointRow]:
    """Every network's checkpoint (``indexer_checkpoints``), by network name."""
    rows = await conn.fetch("select network, block_number, updated_at from indexer_checkpoints")
    return {
        r["network"]: CheckpointRow(r["network"], r["block_number"], r["updated_at"]) for r in rows
    }
