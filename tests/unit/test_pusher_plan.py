"""Pusher planning: token ids -> fewest contiguous ranges, and the calls built from them."""

from __future__ import annotations

import math
import random

import pytest
from eth_abi.abi import decode

from publisher.pusher.calls import (
    REFRESH_METADATA,
    SET_TOKEN_URIS,
    plan_erc4906,
    plan_token_uri,
)
from publisher.pusher.coalesce import TokenRange, chunks, coalesce
from publisher.pusher.rows import WaitingUpdate


def covered(ranges: list[TokenRange]) -> list[int]:
    return [t for r in ranges for t in range(r.first, r.last + 1)]


class TestCoalesce:
    """Ranges cover exactly the updated ids, once each, in the fewest pieces the cap allows."""

    def test_one_run_is_one_range(self) -> None:
        assert coalesce(range(1, 1001), 10_000) == [TokenRange(1, 1000)]

    def test_gaps_are_never_bridged(self) -> None:
        assert coalesce([1, 2, 3, 7, 9, 10], 100) == [
            TokenRange(1, 3),
            TokenRange(7, 7),
            TokenRange(9, 10),
        ]

    def test_duplicates_and_order_do_not_matter(self) -> None:
        assert coalesce([5, 3, 4, 4, 3], 100) == [TokenRange(3, 5)]

    def test_cap_splits_runs_into_full_chunks(self) -> None:
        ranges = coalesce(range(1, 1001), 300)
        assert ranges == [
            TokenRange(1, 300),
            TokenRange(301, 600),
            TokenRange(601, 900),
            TokenRange(901, 1000),
        ]

    def test_random_sets_are_minimal_and_exact(self) -> None:
        rng = random.Random(7)
        for _ in range(200):
            ids = {rng.randrange(0, 400) for _ in range(rng.randrange(0, 300))}
            cap = rng.randrange(1, 50)
            ranges = coalesce(ids, cap)
            assert covered(ranges) == sorted(ids)  # exact, each once, ascending
            assert all(1 <= r.size <= cap for r in ranges)
            # Minimal: each maximal run of length L needs ceil(L / cap) ranges.
            runs = coalesce(ids, 10**9)
            assert len(ranges) == sum(math.ceil(r.size / cap) for r in runs)

    def test_empty_and_bad_input(self) -> None:
        assert coalesce([], 5) == []
        with pytest.raises(ValueError, match="max_size"):
            coalesce([1], 0)
        with pytest.raises(ValueError, match=">= 0"):
            coalesce([-1], 5)

    def test_chunks(self) -> None:
        assert chunks([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
        with pytest.raises(ValueError, match="size"):
            chunks([1], 0)


def waiting(token_id: int, version: int = 1, cid: str | None = None) -> WaitingUpdate:
    return WaitingUpdate(token_id, version, cid or f"bcid{token_id}v{version}")


class TestCalls:
    """Plans carry the right calldata and cover every waiting update, older versions included."""

    def test_erc4906_range_calldata(self) -> None:
        pushes = plan_erc4906([waiting(t) for t in (4, 5, 6, 9)], 100)
        assert [(p.first_token, p.last_token) for p in pushes] == [(4, 6), (9, 9)]
        assert pushes[0].calldata[:4] == REFRESH_METADATA
        assert decode(["uint256", "uint256"], pushes[0].calldata[4:]) == (4, 6)
        assert pushes[0].token_count == 3

    def test_erc4906_covers_every_version(self) -> None:
        pushes = plan_erc4906([waiting(1, 1), waiting(1, 2), waiting(2, 1)], 100)
        assert len(pushes) == 1
        assert sorted((u.token_id, u.version) for u in pushes[0].updates) == [
            (1, 1),
            (1, 2),
            (2, 1),
        ]
        assert pushes[0].token_count == 2

    def test_token_uri_uses_newest_version_and_batches(self) -> None:
        updates = [waiting(3, 1, "bold"), waiting(3, 2, "bnew"), waiting(8), waiting(12)]
        pushes = plan_token_uri(updates, 2, "ipfs://{cid}")
        assert len(pushes) == 2
        assert pushes[0].calldata[:4] == SET_TOKEN_URIS
        ids, uris = decode(["uint256[]", "string[]"], pushes[0].calldata[4:])
        assert list(ids) == [3, 8]
        assert list(uris) == ["ipfs://bnew", "ipfs://bcid8v1"]
        assert len(pushes[0].updates) == 3  # both versions of token 3 are covered
        assert (pushes[1].first_token, pushes[1].last_token) == (12, 12)
