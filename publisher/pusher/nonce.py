"""Local nonce numbering for one sender on one chain (pure; the caller reads the sources).

Asking the node for a nonce per transaction is slow and races with transactions still in
flight, so nonces are counted here. The start is the larger of the chain's ``pending`` count
and one past the highest nonce the outbox recorded: a transaction signed before a crash but
never broadcast holds its nonce (it is broadcast again from the outbox, so the gap fills),
and one broadcast but not yet seen by the node is not numbered twice.
"""

from __future__ import annotations


class NonceManager:
    def __init__(self) -> None:
        self._next: int | None = None

    @property
    def synced(self) -> bool:
        return self._next is not None

    def sync(self, chain_pending: int, recorded_max: int | None) -> None:
        """Start numbering from the chain's pending count and the outbox's highest nonce."""
        if chain_pending < 0:
            raise ValueError(f"pending nonce must be >= 0, got {chain_pending}")
        after_recorded = -1 if recorded_max is None else recorded_max
        self._next = max(chain_pending, after_recorded + 1)

    def take(self) -> int:
        """The next nonce. Raises RuntimeError before ``sync``."""
        if self._next is None:
            raise RuntimeError("nonce manager used before sync()")
        nonce = self._next
        self._next += 1
        return nonce

    def invalidate(self) -> None:
        """Forget the count (e.g. the node refused a nonce): the next use must ``sync`` again."""
        self._next = None
