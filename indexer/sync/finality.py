"""The confirmation policy: which block a network treats as final, and how final a block is.

A block at or below the final one is never expected to be reorganised: the backfill only
publishes final blocks, realtime forgets what it kept to undo them, and a replay refuses to
go past it unless asked. Each published event says how final its block was
(``dnft.messages.finality_of``): the policy's label at or below the final block, ``head``
above it.
"""

from __future__ import annotations

from dnft.config import NetworkSettings
from dnft.messages import Finality, finality_of
from dnft.rpc import RpcClient


async def finalized_block(client: RpcClient, network: NetworkSettings, head: int) -> int:
    """The newest block this network's confirmation policy treats as final: ``head`` minus
    the configured depth, or the node's block of the configured tag (``finalized``, ``safe``),
    never above ``head``. Raises the client's RpcError."""
    conf = network.confirmations
    if conf.depth is not None:
        return max(0, head - conf.depth)
    block = await client.call("eth_getBlockByNumber", [conf.tag, False])
    return 0 if block is None else min(head, int(block["number"], 16))


def final_label(network: NetworkSettings) -> Finality:
    """What a block at or below the final one is: ``safe`` under ``confirmations.tag: safe``,
    else ``finalized`` (the node's finalized tag, or the configured depth: dnft's policy of
    final, which the operator chose for a chain with no tags)."""
    return "safe" if network.confirmations.tag == "safe" else "finalized"


__all__ = ["final_label", "finality_of", "finalized_block"]
