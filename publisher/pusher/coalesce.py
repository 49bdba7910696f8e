"""Token ids -> the fewest contiguous ranges that cover exactly them (pure).

ERC-4906's ``BatchMetadataUpdate(from, to)`` announces a whole range in one event, so a window
of updates costs one transaction per range. A maximal run of consecutive ids of length ``L``
needs ``ceil(L / max_size)`` ranges at least, and splitting each run into chunks of
``max_size`` reaches that bound: the result is minimal. Gaps are never bridged: a range
covers only updated tokens, so each update is announced exactly once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True, order=True)
class TokenRange:
    """Token ids ``first..last``, inclusive."""

    first: int
    last: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def __contains__(self, token_id: object) -> bool:
        return isinstance(token_id, int) and self.first <= token_id <= self.last


def coalesce(token_ids: Iterable[int], max_size: int) -> list[TokenRange]:
    """Ranges, ascending, covering each id once; none longer than ``max_size``.

    Duplicates are allowed (one id updated twice is covered once). Raises ValueError on a
    negative id or a ``max_size`` below 1.
    """
    if max_size < 1:
        raise ValueError(f"max_size must be >= 1, got {max_size}")
    ids = sorted(set(token_ids))
    if ids and ids[0] < 0:
        raise ValueError(f"token ids are >= 0, got {ids[0]}")
    ranges: list[TokenRange] = []
    start = prev = None
    for token_id in ids:
        if start is None or prev is None:
            start = prev = token_id
        elif token_id == prev + 1 and token_id - start < max_size:
            prev = token_id
        else:
            ranges.append(TokenRange(start, prev))
            start = prev = token_id
    if start is not None and prev is not None:
        ranges.append(TokenRange(start, prev))
    return ranges


def chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    """``items`` in order, cut into consecutive pieces of at most ``size``."""
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    return [items[i : i + size] for i in range(0, len(items), size)]
