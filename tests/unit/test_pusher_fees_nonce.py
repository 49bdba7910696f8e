"""Pusher fees (EIP-1559 caps, replacement bumps) and local nonce numbering."""

from __future__ import annotations

from decimal import Decimal

import pytest

from dnft.config import PusherFeeSettings
from publisher.pusher.fees import GWEI, FeePolicy, Fees
from publisher.pusher.nonce import NonceManager


def policy(**kwargs: object) -> FeePolicy:
    return FeePolicy(PusherFeeSettings.model_validate(kwargs))


class TestInitialFees:
    """New transactions get a generous max fee above the base fee, never above the cap."""

    def test_multiplies_base_fee_and_adds_tip(self) -> None:
        fees = policy(priority_fee_gwei=2, base_fee_multiplier=3).initial(20 * GWEI)
        assert fees == Fees(62 * GWEI, 2 * GWEI)

    def test_floor_when_base_fee_is_tiny(self) -> None:
        fees = policy(priority_fee_gwei=1, min_max_fee_gwei=10).initial(7)
        assert fees == Fees(11 * GWEI, GWEI)

    def test_clamped_to_cap(self) -> None:
        fees = policy(max_fee_gwei=50).initial(100 * GWEI)
        assert fees.max_fee_per_gas == 50 * GWEI

    def test_fractional_gwei(self) -> None:
        assert policy(priority_fee_gwei=Decimal("1.5")).tip == 1_500_000_000


class TestBump:
    """A replacement raises tip and max fee by at least the bump (>= 10%), within the cap."""

    def test_both_fees_rise_by_at_least_ten_percent(self) -> None:
        p = policy(bump_percent=10, priority_fee_gwei=1)
        old = Fees(30 * GWEI, 1 * GWEI)
        new = p.bump(old, base_fee=1)
        assert new is not None
        assert new.max_priority_fee_per_gas * 100 >= old.max_priority_fee_per_gas * 110
        assert new.max_fee_per_gas * 100 >= old.max_fee_per_gas * 110

    def test_rounds_up_on_tiny_values(self) -> None:
        new = policy(bump_percent=10, priority_fee_gwei=Decimal("0.000000001")).bump(
            Fees(11, 1), base_fee=0
        )
        assert new is not None
        assert new.max_priority_fee_per_gas >= 2  # 1 wei +10% must not round down to 1

    def test_follows_a_risen_base_fee(self) -> None:
        p = policy(base_fee_multiplier=2, priority_fee_gwei=1)
        new = p.bump(Fees(12 * GWEI, GWEI), base_fee=100 * GWEI)
        assert new is not None
        assert new.max_fee_per_gas == 201 * GWEI

    def test_none_beyond_the_cap(self) -> None:
        p = policy(max_fee_gwei=100)
        assert p.bump(Fees(95 * GWEI, GWEI), base_fee=GWEI) is None

    def test_bump_below_ten_percent_is_refused_in_settings(self) -> None:
        with pytest.raises(ValueError, match="bump_percent"):
            PusherFeeSettings.model_validate({"bump_percent": 5})


class TestNonceManager:
    """Nonces continue after both the chain's pending count and the outbox's highest nonce."""

    def test_counts_from_the_chain(self) -> None:
        n = NonceManager()
        n.sync(chain_pending=5, recorded_max=None)
        assert [n.take(), n.take(), n.take()] == [5, 6, 7]

    def test_recorded_but_unsent_nonces_are_not_reused(self) -> None:
        n = NonceManager()
        n.sync(chain_pending=5, recorded_max=8)  # 5..8 signed before a crash, not broadcast
        assert n.take() == 9

    def test_chain_ahead_of_outbox(self) -> None:
        n = NonceManager()
        n.sync(chain_pending=12, recorded_max=3)  # someone else used the key meanwhile
        assert n.take() == 12

    def test_invalidate_requires_sync(self) -> None:
        n = NonceManager()
        with pytest.raises(RuntimeError, match="sync"):
            n.take()
        n.sync(0, None)
        assert n.take() == 0
        n.invalidate()
        assert not n.synced
        with pytest.raises(RuntimeError):
            n.take()
