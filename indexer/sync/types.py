"""The chain sync engine's own vocabulary: blocks as the window links them, and the closed set
of events realtime sync reports.

A realtime step reports what happened to the chain, in order, as a list of
:data:`RealtimeEvent`: :class:`Block` (new blocks that extend the window, with their logs),
:class:`Finalize` (the final block number advanced) and :class:`Reorg` (the window was cut
back to a common ancestor). The set is closed: a consumer matches on it exhaustively
(``case _: assert_never(event)``), so a new kind of event is a type error until handled.
"""

from __future__ import annotations

from dataclasses import dataclass

from dnft.errors import DnftError
from dnft.rpc import Header, RawLog


@dataclass(frozen=True, slots=True)
class BlockRef:
    """A block as the unfinalized window remembers it: number, hash and parent hash."""

    number: int
    hash: str
    parent_hash: str


def block_ref(header: Header) -> BlockRef:
    return BlockRef(header.number, header.hash, header.parent_hash)


@dataclass(frozen=True, slots=True)
class Block:
    """Consecutive new blocks, linked to the window's tip: their headers (oldest first) and
    every log of the followed addresses in them, in the node's order. ``finalized``: the
    network's final block when they were read (blocks at or below it are already final: a
    step that catches up reads some), so each event can say how final it was."""

    headers: list[Header]
    logs: list[RawLog]
    finalized: int = -1


@dataclass(frozen=True, slots=True)
class Finalize:
    """The newest final block advanced to ``number``: blocks at or below it can no longer be
    reorganised, so what was kept to undo them can be forgotten."""

    number: int


@dataclass(frozen=True, slots=True)
class Reorg:
    """The window was cut back to ``ancestor``; ``orphaned`` blocks (oldest first) are no
    longer canonical and the events published from them must be retracted."""

    ancestor: BlockRef
    orphaned: list[BlockRef]

    @property
    def depth(self) -> int:
        return len(self.orphaned)


RealtimeEvent = Block | Finalize | Reorg


class ChainMovedError(DnftError):
    """The chain changed while a step read it; the step is retried."""
