"""Realtime sync reports each step as a list of events: [Block, Finalize] while the final
block advances, [Block] when it does not, [Reorg] on a fork, [] at the head."""

from __future__ import annotations

from typing import Any, cast

import structlog.testing

from dnft.config import Confirmations, NetworkSettings
from dnft.rpc import Header, RpcClient
from indexer.sync import Block, BlockRef, ChainWindow, Finalize, RealtimeSync, Reorg


def block_hash(number: int, fork: str) -> str:
    return "0x" + f"{fork}{number:x}".rjust(64, "0")


class FakeChain:
    """Enough of an RpcClient for RealtimeSync: block headers and (empty) logs of one chain
    whose blocks above ``fork_at`` may be replaced by another fork's."""

    def __init__(self, head: int) -> None:
        self.head = head
        self.fork = "a"
        self.fork_at = 0
        self.finalized = 0  # the node's "finalized" block, for the tag policy

    def hash_of(self, number: int) -> str:
        return block_hash(number, self.fork if number > self.fork_at else "a")

    def ref(self, number: int) -> BlockRef:
        return BlockRef(number, self.hash_of(number), self.hash_of(number - 1))

    async def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        out = []
        for method, params in calls:
            assert method == "eth_getBlockByNumber"
            number = int(params[0], 16)
            out.append(
                None
                if number > self.head
                else {
                    "number": hex(number),
                    "hash": self.hash_of(number),
                    "parentHash": self.hash_of(number - 1),
                    "timestamp": hex(1_700_000_000 + number),
                }
            )
        return out

    async def call(self, method: str, params: list[Any] | None = None) -> Any:
        if method == "eth_getBlockByNumber":
            assert params == ["finalized", False]
            return {"number": hex(self.finalized)}
        assert method == "eth_getLogs"
        return []


def sync_on(chain: FakeChain, anchor: int, depth: int | None) -> RealtimeSync:
    """Final: ``depth`` blocks below the head, or (None) the node's ``finalized`` block."""
    network = NetworkSettings(
        name="local",
        chain_id=31337,
        rpc_urls=["http://localhost:1"],
        confirmations=(
            Confirmations(depth=depth) if depth is not None else Confirmations(tag="finalized")
        ),
    )
    window = ChainWindow([chain.ref(anchor)])
    return RealtimeSync(cast(RpcClient, chain), network, window, ["0x" + "11" * 20])


def new_blocks(chain: FakeChain, first: int, last: int, finalized: int) -> Block:
    """The Block a step over ``first..last`` reports (no logs on this chain), read while
    ``finalized`` was the final block."""
    headers = [
        Header(n, chain.hash_of(n), chain.hash_of(n - 1), 1_700_000_000 + n)
        for n in range(first, last + 1)
    ]
    return Block(headers, [], finalized)


class TestRealtimeEvents:
    async def test_new_blocks_then_finality_when_it_advances(self) -> None:
        chain = FakeChain(head=20)
        sync = sync_on(chain, anchor=10, depth=5)
        first = await sync.step(chain.head)
        assert [type(e) for e in first] == [Block, Finalize]
        block, final = first
        assert isinstance(block, Block)
        assert isinstance(final, Finalize)
        assert [h.number for h in block.headers] == list(range(11, 21))
        assert block.finalized == 15, "the block says which of its blocks were already final"
        assert final.number == 15
        chain.head = 21
        second = await sync.step(chain.head)
        assert [type(e) for e in second] == [Block, Finalize]
        assert second[1] == Finalize(16)

    async def test_finality_not_repeated_when_it_stands_still(self) -> None:
        chain = FakeChain(head=12)
        chain.finalized = 9
        sync = sync_on(chain, anchor=10, depth=None)
        assert await sync.step(chain.head) == [new_blocks(chain, 11, 12, 9), Finalize(9)]
        chain.head = 13  # the node's final block stays at 9: nothing new to forget
        assert [type(e) for e in await sync.step(chain.head)] == [Block]
        chain.head, chain.finalized = 14, 12
        assert (await sync.step(chain.head))[1:] == [Finalize(12)]

    async def test_at_the_head_nothing(self) -> None:
        chain = FakeChain(head=10)
        sync = sync_on(chain, anchor=10, depth=5)
        assert await sync.step(chain.head) == []

    async def test_fork_is_one_reorg(self) -> None:
        chain = FakeChain(head=20)
        sync = sync_on(chain, anchor=10, depth=100)
        await sync.step(chain.head)
        chain.fork, chain.fork_at = "b", 17  # blocks 18..20 replaced
        # Captured: the step logs the reorg, and another test may have pointed structlog at
        # a stream that is closed by now.
        with structlog.testing.capture_logs() as logs:
            (reorg,) = await sync.step(chain.head)
        assert [e["event"] for e in logs] == ["reorg"]
        assert isinstance(reorg, Reorg)
        assert reorg.ancestor == chain.ref(17)
        assert reorg.depth == 3
        assert [b.number for b in reorg.orphaned] == [18, 19, 20]
