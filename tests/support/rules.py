"""Collection rules for tests, built from named traits: the sample's, a smaller set the
regenerator tests share, and :func:`collection_rules` for a test's own variant."""

from __future__ import annotations

import copy
from typing import Any

FED = {"name": "fed", "event": "Fed", "reduce": "count"}
FED_WEI = {"name": "fed_wei", "event": "Fed", "reduce": "sum", "arg": "amount"}
OWNER = {"name": "owner", "event": "Transfer", "reduce": "last", "arg": "to"}
MOOD = {"name": "mood", "event": "TraitSet", "reduce": "trait", "key": "mood"}
CALM_MOOD = MOOD | {"default": "calm"}
PRICE = {"name": "price", "feed": "eth-usd"}


def market(*buckets: tuple[str, str | None]) -> dict[str, Any]:
    """A ``market`` trait bucketing the eth-usd feed: (name, upper bound or None) pairs."""
    return {
        "name": "market",
        "feed": "eth-usd",
        "buckets": [
            {"name": name} if below is None else {"below": below, "name": name}
            for name, below in buckets
        ],
    }


BEAR_BULL = market(("bear", "2000"), ("bull", None))


def collection_rules(
    *traits: dict[str, Any],
    salt: str,
    levels: dict[int, str],
    prompt: str,
    **extra: Any,
) -> dict[str, Any]:
    """Rules of a collection named ``sample`` on contract ``collection``, staged by ``fed``
    (``levels``: minimum count -> stage name); ``extra`` adds keys. A fresh deep copy."""
    return copy.deepcopy(
        {
            "name": "sample",
            "contract": "collection",
            "salt": salt,
            "traits": list(traits),
            "stages": {
                "trait": "fed",
                "levels": [{"min": low, "name": name} for low, name in levels.items()],
            },
            "prompt": prompt,
            **extra,
        }
    )


SAMPLE: dict[str, Any] = collection_rules(
    FED,
    FED_WEI,
    OWNER,
    CALM_MOOD,
    PRICE,
    market(("bear", "2000"), ("calm", "4000"), ("bull", None)),
    salt="sample-v1",
    levels={0: "egg", 3: "hatchling", 10: "adult"},
    prompt="a {stage} creature in a {mood} mood, {market} market",
)

RULES: dict[str, Any] = collection_rules(
    FED,
    OWNER,
    MOOD,
    BEAR_BULL,
    salt="test-salt",
    levels={0: "egg", 2: "kid"},
    prompt="a {stage} in a {mood} mood",
)
