"""Collection rules validate with named keys; token state derives deterministically."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from dnft.collection import TokenEvent, collection_from_mapping, derive_state, load_collection
from dnft.errors import ConfigError
from tests.support.rules import SAMPLE


def ev(n: int, event: str, **args: Any) -> TokenEvent:
    return TokenEvent(
        f"1:0x{n:064x}:0", event, args, block_number=n, log_index=0, block_timestamp=1000 + n
    )


class TestCollection:
    """Rules files validate at load and name the failing key."""

    def test_sample_loads(self, tmp_path: Path) -> None:
        import yaml

        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(SAMPLE))
        collection = load_collection(path)
        assert collection.feeds == {"eth-usd"}

    @pytest.mark.parametrize(
        ("change", "key", "reason"),
        [
            (lambda c: c["traits"][1].pop("arg"), "traits.[fed_wei]", "needs 'arg'"),
            (lambda c: c["stages"].update(trait="nope"), "", "is not a trait"),
            (lambda c: c.update(prompt="{colour}"), "", "unknown placeholders"),
            (
                lambda c: c["traits"][5]["buckets"][1].update(below="1000"),
                "traits.[market]",
                "must increase",
            ),
            (
                lambda c: c["traits"].append({"name": "x", "event": "Fed", "feed": "f"}),
                "traits.[x]",
                "exactly one of",
            ),
        ],
    )
    def test_errors_name_the_key(self, change: Any, key: str, reason: str) -> None:
        import copy

        raw = copy.deepcopy(SAMPLE)
        change(raw)
        with pytest.raises(ConfigError, match=reason) as info:
            collection_from_mapping(raw)
        assert key in info.value.key


class TestState:
    """Traits, stage and state hash follow the events and feeds, and nothing else."""

    collection = collection_from_mapping(SAMPLE)

    def state(self, events: list[TokenEvent], price: str | None = "2500") -> Any:
        feeds = {} if price is None else {"eth-usd": Decimal(price)}
        return derive_state(self.collection, 7, events, feeds)

    def test_traits(self) -> None:
        events = [
            ev(1, "Transfer", to="0xaa"),
            ev(2, "Fed", amount="5"),
            ev(3, "Fed", amount="1000000000000000000000"),  # beyond 64-bit ints
            ev(4, "TraitSet", key="mood", value="sleepy"),
            ev(5, "TraitSet", key="colour", value="red"),
            ev(6, "Transfer", to="0xbb"),
        ]
        s = self.state(events)
        assert s.traits == {
            "fed": "2",
            "fed_wei": "1000000000000000000005",
            "owner": "0xbb",
            "mood": "sleepy",
            "price": "2500",
            "market": "calm",
        }
        assert s.stage == "egg"

    def test_stage_thresholds(self) -> None:
        feeds = [ev(i, "Fed", amount="1") for i in range(1, 11)]
        assert self.state(feeds[:2]).stage == "egg"
        assert self.state(feeds[:3]).stage == "hatchling"
        assert self.state(feeds).stage == "adult"

    def test_buckets_and_missing_feed(self) -> None:
        assert self.state([], "1999.99").traits["market"] == "bear"
        assert self.state([], "4000").traits["market"] == "bull"
        missing = self.state([], None).traits
        assert (missing["market"], missing["price"], missing["mood"]) == (
            "unknown",
            "unknown",
            "calm",
        )

    def test_hash_ignores_order_and_duplicates_reproduce_it(self) -> None:
        events = [ev(1, "Fed", amount="1"), ev(2, "TraitSet", key="mood", value="x")]
        assert self.state(events).state_hash == self.state(events[::-1]).state_hash

    def test_retraction_restores_previous_hash(self) -> None:
        base = [ev(1, "Fed", amount="1")]
        before = self.state(base).state_hash
        after = self.state([*base, ev(2, "Fed", amount="1")]).state_hash
        assert after != before
        assert self.state(base).state_hash == before

    def test_equal_numbers_hash_alike(self) -> None:
        assert self.state([], "2500.0").state_hash == self.state([], "2500").state_hash

    def test_long_strings_are_capped(self) -> None:
        s = self.state([ev(1, "TraitSet", key="mood", value="x" * 10_000)])
        assert len(s.traits["mood"]) == 200
