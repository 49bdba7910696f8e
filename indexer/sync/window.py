"""The unfinalized window: recent blocks linked by parentHash, anchored at a final block.

Pure data structure (no I/O), so reorg logic is unit-tested without a node. The anchor is the
newest block known final; everything above it may still be replaced.
"""

from __future__ import annotations

from collections.abc import Iterable

from dnft.errors import DnftError
from indexer.sync.types import BlockRef


class ReorgBeyondWindowError(DnftError, RuntimeError):
    """The chain changed below the oldest block we remember: never papered over."""

    def __init__(self, network: str, anchor: int, block: int) -> None:
        self.anchor = anchor
        super().__init__(
            f"{network}: reorg reaches below block {anchor}, the oldest block in the "
            f"unfinalized window (seen at block {block}). Events published from the orphaned "
            "blocks cannot be retracted automatically: raise the network's reorg_window or "
            "confirmation depth, then replay from a block below the fork with `dnft replay`."
        )


class ChainWindow:
    def __init__(self, blocks: Iterable[BlockRef] = ()) -> None:
        self._blocks: list[BlockRef] = []
        for block in blocks:
            self.append(block)

    def __len__(self) -> int:
        return len(self._blocks)

    @property
    def anchor(self) -> BlockRef | None:
        return self._blocks[0] if self._blocks else None

    @property
    def tip(self) -> BlockRef | None:
        return self._blocks[-1] if self._blocks else None

    def get(self, number: int) -> BlockRef | None:
        anchor = self.anchor
        if anchor is None or number < anchor.number or number > anchor.number + len(self) - 1:
            return None
        return self._blocks[number - anchor.number]

    def links(self, block: BlockRef) -> bool:
        """Whether ``block`` extends the tip (same parent hash, next number)."""
        tip = self.tip
        return tip is None or (block.number == tip.number + 1 and block.parent_hash == tip.hash)

    def append(self, block: BlockRef) -> None:
        if not self.links(block):
            raise ValueError(f"block {block.number} {block.hash} does not extend the window tip")
        self._blocks.append(block)

    def truncate_after(self, number: int) -> list[BlockRef]:
        """Drop blocks above ``number``; returns the dropped (orphaned) blocks, oldest first."""
        anchor = self.anchor
        if anchor is None:
            return []
        keep = max(0, number - anchor.number + 1)
        dropped, self._blocks = self._blocks[keep:], self._blocks[:keep]
        return dropped

    def prune_below(self, number: int) -> None:
        """Forget blocks below ``number`` (final); the block at ``number`` stays as anchor."""
        anchor = self.anchor
        if anchor is None or number <= anchor.number:
            return
        drop = min(number - anchor.number, len(self) - 1)
        self._blocks = self._blocks[drop:]
