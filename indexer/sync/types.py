"""The chain sync engine's own vocabulary: blocks as the window links them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BlockRef:
    """A block as the unfinalized window remembers it: number, hash and parent hash."""

    number: int
    hash: str
    parent_hash: str
