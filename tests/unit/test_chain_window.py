"""The unfinalized window links blocks by parentHash and truncates on reorgs."""

from __future__ import annotations

import pytest

from indexer.sync import BlockRef, ChainWindow


def chain(start: int, count: int, fork: str = "a") -> list[BlockRef]:
    blocks = []
    parent = f"0x{fork}{start - 1}"
    for n in range(start, start + count):
        h = f"0x{fork}{n}"
        blocks.append(BlockRef(n, h, parent))
        parent = h
    return blocks


class TestChainWindow:
    """Appending, looking up, truncating and pruning blocks."""

    def test_append_requires_linkage(self) -> None:
        window = ChainWindow(chain(10, 3))
        assert window.tip == BlockRef(12, "0xa12", "0xa11")
        with pytest.raises(ValueError, match="does not extend"):
            window.append(BlockRef(13, "0xb13", "0xb12"))
        with pytest.raises(ValueError, match="does not extend"):
            window.append(BlockRef(14, "0xa14", "0xa12"))
        window.append(BlockRef(13, "0xa13", "0xa12"))
        assert len(window) == 4

    def test_get_by_number(self) -> None:
        window = ChainWindow(chain(10, 3))
        assert window.get(11) == BlockRef(11, "0xa11", "0xa10")
        assert window.get(9) is None
        assert window.get(13) is None

    def test_truncate_returns_orphans(self) -> None:
        window = ChainWindow(chain(10, 5))
        orphans = window.truncate_after(11)
        assert [b.number for b in orphans] == [12, 13, 14]
        assert window.tip is not None
        assert window.tip.number == 11
        assert window.links(BlockRef(12, "0xb12", "0xa11"))

    def test_prune_keeps_anchor(self) -> None:
        window = ChainWindow(chain(10, 5))
        window.prune_below(12)
        assert window.anchor is not None
        assert window.anchor.number == 12
        window.prune_below(100)  # never empties the window: the tip stays as anchor
        assert window.anchor == window.tip == BlockRef(14, "0xa14", "0xa13")

    def test_empty_window_accepts_anything(self) -> None:
        window = ChainWindow()
        assert window.links(BlockRef(5, "0x5", "0x4"))
        assert window.truncate_after(3) == []
