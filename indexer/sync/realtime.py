"""Realtime sync: follow the head, link every block by parentHash, and report reorgs.

Each :meth:`RealtimeSync.step` returns the events of one step, in order, from the closed set
of ``indexer.sync.types``, as Ponder does: ``[Block]`` or ``[Block, Finalize]`` (new blocks
with their logs, linked to the window; then the final block number, when it advanced),
``[Reorg]`` (the window was cut back to a common ancestor; the orphaned blocks' events must
be retracted), or ``[]`` (nothing new). It never touches Kafka or Postgres.

Logs of a step are fetched with ``eth_getLogs`` over the step's range (split where the
provider refuses it) and checked against the headers: a log whose blockHash differs means
the chain moved during the step, which is simply retried.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import structlog

from dnft.config import NetworkSettings
from dnft.rpc import BlockNotFoundError, Header, RawLog, RpcClient, get_block_headers, iter_logs
from indexer.sync.finality import finalized_block
from indexer.sync.types import (
    Block,
    ChainMovedError,
    Finalize,
    RealtimeEvent,
    Reorg,
    block_ref,
)
from indexer.sync.window import ChainWindow, ReorgBeyondWindowError

log = structlog.get_logger("dnft.indexer.realtime")

# Headers fetched per step when catching up; also bounds the logs held in memory.
MAX_BLOCKS_PER_STEP = 100
# Headers fetched per round while walking back to a common ancestor.
_WALK_BACK_BATCH = 16


class RealtimeSync:
    def __init__(
        self,
        client: RpcClient,
        network: NetworkSettings,
        window: ChainWindow,
        addresses: Sequence[str],
        *,
        max_blocks_per_step: int = MAX_BLOCKS_PER_STEP,
    ) -> None:
        if window.tip is None:
            raise ValueError("realtime sync needs a window anchored at a known block")
        self._client = client
        self._network = network
        self.window = window
        self._addresses = list(addresses)
        self._max_blocks = max_blocks_per_step
        # The final block number last reported; None: none yet (the first step reports it).
        self._finalized: int | None = None

    async def step(self, head: int) -> list[RealtimeEvent]:
        """Advance towards ``head`` by at most one step; the step's events, in order (none
        when already at the head, or when a lagging node is behind the window's tip).

        Raises ChainMovedError (the chain changed during the step: call again),
        ReorgBeyondWindowError when the fork point is below the window's anchor, and the
        client's RpcError.
        """
        tip = self.window.tip
        assert tip is not None
        if head < tip.number:
            # A node behind us (failover to a lagging replica) or a chain cut shorter. Only a
            # hash mismatch at its head proves a reorg; otherwise wait for it to catch up.
            (at_head,) = await get_block_headers(self._client, [head])
            ours = self.window.get(head)
            if ours is None or ours.hash == at_head.hash:
                return []
            return [await self._reconcile(head)]
        end = min(head, tip.number + self._max_blocks)
        # Re-read the tip too: a reorg at equal height shows only as a changed tip hash.
        try:
            headers = await get_block_headers(self._client, range(tip.number, end + 1))
        except BlockNotFoundError as exc:
            raise ChainMovedError(str(exc)) from exc
        if headers[0].hash != tip.hash:
            return [await self._reconcile(tip.number)]
        new = headers[1:]
        if not new:
            return []
        for prev, cur in zip(headers, new, strict=False):
            if cur.parent_hash != prev.hash:
                raise ChainMovedError(f"block {cur.number} does not link to {prev.number}")
        logs = await self._logs(new)
        finalized = await finalized_block(self._client, self._network, head)
        for header in new:
            self.window.append(block_ref(header))
        # Final blocks, and blocks older than the configured window, can be forgotten.
        self.window.prune_below(max(finalized, end - self._network.reorg_window))
        events: list[RealtimeEvent] = [Block(new, logs, finalized)]
        final = min(finalized, end)
        if self._finalized is None or final > self._finalized:
            self._finalized = final
            events.append(Finalize(final))
        return events

    async def _logs(self, headers: list[Header]) -> list[RawLog]:
        # Through iter_logs, as backfill: a provider that refuses the step's range (smaller
        # caps than max_block_range exist) gets it split instead of refusing it forever.
        logs: list[RawLog] = []
        chunks = iter_logs(
            self._client,
            self._addresses,
            None,
            headers[0].number,
            headers[-1].number,
            max_range=self._network.max_block_range,
            in_flight=self._network.max_in_flight,
        )
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                logs.extend(chunk)
        first = headers[0].number
        for entry in logs:
            number = int(entry["blockNumber"] or "0x0", 16)
            index = number - first
            if not 0 <= index < len(headers) or entry["blockHash"] != headers[index].hash:
                raise ChainMovedError(f"log of block {number} has an unexpected block hash")
        return logs

    async def _reconcile(self, mismatch: int) -> Reorg:
        """Walk back from block ``mismatch`` (whose hash differs) to the newest block whose
        hash the node still agrees with."""
        anchor = self.window.anchor
        assert anchor is not None
        seen_at = mismatch
        number = mismatch - 1
        while number >= anchor.number:
            low = max(anchor.number, number - _WALK_BACK_BATCH + 1)
            canonical = await get_block_headers(self._client, range(low, number + 1))
            for header in reversed(canonical):
                ours = self.window.get(header.number)
                if ours is not None and ours.hash == header.hash:
                    orphaned = self.window.truncate_after(header.number)
                    log.warning(
                        "reorg",
                        network=self._network.name,
                        ancestor=header.number,
                        depth=len(orphaned),
                    )
                    return Reorg(ours, orphaned)
            number = low - 1
        raise ReorgBeyondWindowError(self._network.name, anchor.number, seen_at)
