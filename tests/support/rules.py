"""Collection rules for tests: the sample's, and a smaller set the regenerator tests share."""

from __future__ import annotations

from typing import Any

SAMPLE: dict[str, Any] = {
    "name": "sample",
    "contract": "collection",
    "salt": "sample-v1",
    "traits": [
        {"name": "fed", "event": "Fed", "reduce": "count"},
        {"name": "fed_wei", "event": "Fed", "reduce": "sum", "arg": "amount"},
        {"name": "owner", "event": "Transfer", "reduce": "last", "arg": "to"},
        {"name": "mood", "event": "TraitSet", "reduce": "trait", "key": "mood", "default": "calm"},
        {"name": "price", "feed": "eth-usd"},
        {
            "name": "market",
            "feed": "eth-usd",
            "buckets": [
                {"below": "2000", "name": "bear"},
                {"below": "4000", "name": "calm"},
                {"name": "bull"},
            ],
        },
    ],
    "stages": {
        "trait": "fed",
        "levels": [
            {"min": 0, "name": "egg"},
            {"min": 3, "name": "hatchling"},
            {"min": 10, "name": "adult"},
        ],
    },
    "prompt": "a {stage} creature in a {mood} mood, {market} market",
}

RULES: dict[str, Any] = {
    "name": "sample",
    "contract": "collection",
    "salt": "test-salt",
    "traits": [
        {"name": "fed", "event": "Fed", "reduce": "count"},
        {"name": "owner", "event": "Transfer", "reduce": "last", "arg": "to"},
        {"name": "mood", "event": "TraitSet", "reduce": "trait", "key": "mood"},
        {
            "name": "market",
            "feed": "eth-usd",
            "buckets": [{"below": "2000", "name": "bear"}, {"name": "bull"}],
        },
    ],
    "stages": {"trait": "fed", "levels": [{"min": 0, "name": "egg"}, {"min": 2, "name": "kid"}]},
    "prompt": "a {stage} in a {mood} mood",
}
