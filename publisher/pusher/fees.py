"""EIP-1559 fee caps for new transactions and for replacements (pure).

A new transaction offers ``maxFeePerGas = base fee * multiplier + tip`` (at least
``min_max_fee``): only base fee + tip is charged, and a generous cap keeps the transaction in
the pool while full blocks raise the base fee 12.5% each. A replacement (same nonce) must
raise both the tip and the max fee by at least 10% or nodes refuse it ("replacement
transaction underpriced"); it also never offers less than a new transaction would now.
Nothing ever exceeds ``max_fee`` (the operator's ceiling).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from dnft.config import PusherFeeSettings

GWEI = 10**9


@dataclass(frozen=True, slots=True)
class Fees:
    max_fee_per_gas: int
    max_priority_fee_per_gas: int


def _wei(gwei: Decimal) -> int:
    return int(gwei * GWEI)


def _raise_by(value: int, percent: int) -> int:
    """``value`` raised by ``percent``, rounded up (so +10% of 1 wei is 2 wei, not 1)."""
    return -(-value * (100 + percent) // 100)


class FeePolicy:
    def __init__(self, settings: PusherFeeSettings) -> None:
        self.tip = _wei(settings.priority_fee_gwei)
        self.multiplier = settings.base_fee_multiplier
        self.min_max_fee = _wei(settings.min_max_fee_gwei)
        self.cap = _wei(settings.max_fee_gwei)
        self.bump_percent = settings.bump_percent

    def initial(self, base_fee: int) -> Fees:
        """Fees for a new transaction at the current ``base_fee`` (wei), clamped to the cap."""
        max_fee = max(int(base_fee * self.multiplier), self.min_max_fee) + self.tip
        max_fee = min(max_fee, self.cap)
        return Fees(max_fee, min(self.tip, max_fee))

    def bump(self, previous: Fees, base_fee: int) -> Fees | None:
        """Fees for a replacement of ``previous``; None when they would exceed the cap."""
        fresh = self.initial(base_fee)
        tip = max(
            _raise_by(previous.max_priority_fee_per_gas, self.bump_percent),
            fresh.max_priority_fee_per_gas,
        )
        max_fee = max(
            _raise_by(previous.max_fee_per_gas, self.bump_percent), fresh.max_fee_per_gas, tip
        )
        if max_fee > self.cap:
            return None
        return Fees(max_fee, tip)
