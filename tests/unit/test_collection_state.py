"""Collection rules validate with named keys; token state derives deterministically."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from dnft.collection import TokenEvent, collection_from_mapping, derive_state, load_collection
from dnft.errors import ConfigError
from regenerator.metadata import build_metadata
from regenerator.renderers.base import RenderResult
from tests.support.rules import CALM_MOOD, FED, PRICE, SAMPLE, collection_rules


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


class TestHostileNumbers:
    """Holders' number-like strings (``setTrait(id, "mood", "1e999999999")``) go through the
    bounded parser on the state and metadata paths: each call returns at once, and a value out
    of bounds is not a number (the stage counts it as 0, metadata shows it as text)."""

    HOSTILE = ("1e999999999", "-1e-999999999", "NaN", "9" * 5000, "١٢٣")
    collection = collection_from_mapping(
        collection_rules(
            {"name": "fed", "event": "TraitSet", "reduce": "trait", "key": "fed", "default": 0},
            {"name": "total", "event": "TraitSet", "reduce": "sum", "arg": "value"},
            CALM_MOOD,
            salt="s",
            levels={0: "egg", 3: "adult"},
            prompt="a {stage} creature in a {mood} mood",
        )
    )

    def events(self, value: str) -> list[TokenEvent]:
        return [
            ev(1, "TraitSet", key="fed", value=value),
            ev(2, "TraitSet", key="mood", value=value),
        ]

    @pytest.mark.parametrize("value", HOSTILE)
    def test_state_and_metadata_return_fast(self, value: str) -> None:
        began = time.perf_counter()
        state = derive_state(self.collection, 2, self.events(value), {})
        result = RenderResult.build(
            b"png", width=1, height=1, renderer="r", renderer_version="1", provenance={"seed": 1}
        )
        document = build_metadata(
            self.collection, state, result, image_uri="ipfs://x", image_cid="x",
            triggered_by=[], prompt="p",
        )  # fmt: skip
        assert time.perf_counter() - began < 1.0
        assert state.stage == "egg"  # not a number: counts as 0
        assert state.traits["total"] == "0"
        shown = {a["trait_type"]: a for a in document["attributes"]}
        assert "display_type" not in shown["mood"]
        assert isinstance(shown["mood"]["value"], str)

    def test_numbers_within_bounds_still_count(self) -> None:
        state = derive_state(self.collection, 2, self.events("3"), {})
        assert (state.stage, state.traits["total"]) == ("adult", "6")

    def test_absurd_feed_value_is_the_default(self) -> None:
        rules = collection_rules(FED, PRICE, salt="s", levels={0: "egg"}, prompt="{price}")
        state = derive_state(
            collection_from_mapping(rules), 2, [], {"eth-usd": Decimal("1e999999999")}
        )
        assert state.traits["price"] == "unknown"
