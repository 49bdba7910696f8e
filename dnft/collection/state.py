"""A token's state, derived from its events and the feeds it is bound to; pure and deterministic.

The state is recomputed from the token's remaining events whenever one arrives or is
retracted, so a reorg simply removes an event and the state falls back to what it was. Its
``state_hash`` (sha256 of the canonical JSON) decides whether anything needs rendering: the
same state never renders twice, so duplicates and replays are no-ops.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from dnft.collection.rules import Collection, Trait
from dnft.numbers import BadNumber, check_decimal, parse_decimal

# On-chain strings are untrusted: the state keeps at most this much of each (sanitising for
# prompts, HTML and file names happens where they are used).
MAX_STRING = 200
UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class TokenEvent:
    """A chain event as the regenerator keeps it (args in the message's JSON form)."""

    event_id: str
    event: str
    args: Mapping[str, Any]
    block_number: int
    log_index: int
    block_timestamp: int | None = None


@dataclass(frozen=True, slots=True)
class TokenState:
    token_id: int
    traits: dict[str, str]
    stage: str

    def canonical(self) -> bytes:
        body = {"token_id": str(self.token_id), "traits": self.traits, "stage": self.stage}
        return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)

    @property
    def state_hash(self) -> str:
        return hashlib.sha256(self.canonical()).hexdigest()


def derive_state(
    collection: Collection,
    token_id: int,
    events: Iterable[TokenEvent],
    feeds: Mapping[str, Decimal],
) -> TokenState:
    """The token's traits and stage. Events may come in any order; chain order is restored."""
    ordered = sorted(events, key=lambda e: (e.block_number, e.log_index))
    traits = {t.name: _trait(t, ordered, feeds) for t in collection.traits}
    return TokenState(token_id, traits, stage_of(collection, traits))


def stage_of(collection: Collection, traits: Mapping[str, str]) -> str:
    value = _number(traits.get(collection.stages.trait, "0"))
    stage = collection.stages.levels[0].name
    for level in collection.stages.levels:
        if value >= level.min:
            stage = level.name
    return stage


def _trait(trait: Trait, events: list[TokenEvent], feeds: Mapping[str, Decimal]) -> str:
    if trait.feed is not None:
        raw = feeds.get(trait.feed)
        value = None if raw is None else _feed_value(raw)
        if value is None:
            return _default(trait)
        if trait.buckets is None:
            return _decimal_str(value)
        for bucket in trait.buckets:
            if bucket.below is None or value < bucket.below:
                return bucket.name
        return trait.buckets[-1].name
    matching = [e for e in events if e.event == trait.event]
    if trait.reduce == "count":
        return str(len(matching))
    if trait.reduce == "sum":
        return _decimal_str(
            sum((_number(e.args.get(trait.arg or "")) for e in matching), Decimal(0))
        )
    if trait.reduce == "trait":
        keyed = [e for e in matching if e.args.get("key") == trait.key]
        return _string(keyed[-1].args.get("value")) if keyed else _default(trait)
    if not matching:
        return _default(trait)
    last = matching[-1]
    if trait.reduce == "held_since":
        return str(last.block_timestamp if last.block_timestamp is not None else last.block_number)
    return _string(last.args.get(trait.arg or ""))  # reduce: last


def _default(trait: Trait) -> str:
    return UNKNOWN if trait.default is None else str(trait.default)


def _string(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text[:MAX_STRING]


def _number(value: Any) -> Decimal:
    """An event argument or trait as a number; 0 when it is not one within bounds.

    Arguments are untrusted text (``setTrait(id, "fed", "1e999999999")``): they go through
    the shared bounded parser, so no huge exponent ever reaches ``format`` or arithmetic."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return Decimal(0)
    try:
        return parse_decimal(value)
    except BadNumber:
        return Decimal(0)


def _feed_value(value: Decimal) -> Decimal | None:
    """A feed's stored value, held to the same bounds (it came through Kafka); None if not."""
    try:
        return check_decimal(value)
    except BadNumber:
        return None


def _decimal_str(value: Decimal) -> str:
    """Canonical text of a number: no exponent, no trailing zeros (1.50 and 1.5 hash alike)."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text
