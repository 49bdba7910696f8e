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
import structlog

from dnft import metrics
from dnft.collection.abi import is_integer_arg
from dnft.collection.cel import CelError, compile_expression, evaluate, from_decimal, to_decimal
from dnft.collection.reducers import (
    EXPR_VARIABLES,
    MAX_STRING,
    REDUCERS,
    WHERE_VARIABLES,
    Value,
    matches,
    number,
    text,
)
from dnft.collection.rules import Collection, Trait
from dnft.numbers import BadNumber, check_decimal

__all__ = ["MAX_STRING", "UNKNOWN", "TokenEvent", "TokenState", "derive_state", "stage_of"]

UNKNOWN = "unknown"
log = structlog.get_logger("dnft.collection")


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
    """The token's traits and stage. Events may come in any order; chain order is restored.
    Event and feed traits come first, then computed traits in the order listed; a CEL failure
    gives the trait's default (counted in ``dnft_rules_eval_errors_total``), never an error."""
    ordered = sorted(events, key=_chain_order)
    values: dict[str, Value] = {}
    for trait in collection.traits:
        if trait.expr is None:
            values[trait.name] = _source_value(collection, trait, ordered, feeds)
    typed = {name: _typed(trait, values[trait.name]) for trait in collection.traits
             if (name := trait.name) in values}  # fmt: skip
    for trait in collection.traits:
        if trait.expr is not None:
            values[trait.name] = _computed(collection, trait, typed)
            typed[trait.name] = _typed(trait, values[trait.name])
    traits = {t.name: _state_text(t, values[t.name]) for t in collection.traits}
    return TokenState(token_id, traits, stage_of(collection, traits))


def _chain_order(event: TokenEvent) -> tuple[int, int, int]:
    """Block, log, then item: the parts of one batch log (``chainId:blockHash:logIndex:item``
    ids, one per ERC-1155 id) keep the batch's order, whatever order they are read in."""
    last = event.event_id.rsplit(":", 1)[-1]
    item = int(last) if event.event_id.count(":") == 3 and last.isdigit() else -1
    return (event.block_number, event.log_index, item)


def stage_of(collection: Collection, traits: Mapping[str, str]) -> str:
    """The stage the staging trait's value reaches (a value that is not a number counts 0)."""
    value = number(traits.get(collection.stages.trait, "0")) or Decimal(0)
    stage = collection.stages.levels[0].name
    for level in collection.stages.levels:
        if value >= level.min:
            stage = level.name
    return stage


def _source_value(
    collection: Collection, trait: Trait, events: list[TokenEvent], feeds: Mapping[str, Decimal]
) -> Value:
    if trait.feed is not None:
        raw = feeds.get(trait.feed)
        value = None if raw is None else _feed_value(raw)
        if value is None or trait.buckets is None:
            return value
        for bucket in trait.buckets:
            if bucket.below is None or value < bucket.below:
                return bucket.name
        return trait.buckets[-1].name
    types = collection.trait_arg_types(trait)
    names = trait.event_names
    matching = [e for e in events if e.event in names and _passes(collection, trait, e, types)]
    return REDUCERS[trait.reduce or "count"].run(trait, matching, types)


def _passes(
    collection: Collection, trait: Trait, event: TokenEvent, types: Mapping[str, str]
) -> bool:
    where = trait.where
    if where is None:
        return True
    if not isinstance(where, str):
        return matches(where, event.args, types.get(where.arg))
    expression = compile_expression(where, WHERE_VARIABLES)
    # Only the arguments it reads: each value crossing into CEL costs microseconds.
    needed = expression.needs("args")
    args = {
        name: _cel_arg(value, types.get(name))
        for name, value in event.args.items()
        if needed is None or name in needed
    }
    try:
        result = evaluate(expression, {"args": args})
    except CelError as exc:
        _count_error(collection, trait, "where", exc)
        return False
    if not isinstance(result, bool):
        _count_error(collection, trait, "where", CelError(f"not a bool: {type(result).__name__}"))
        return False
    return result


def _computed(collection: Collection, trait: Trait, typed: Mapping[str, Any]) -> Value:
    expression = compile_expression(trait.expr or "", EXPR_VARIABLES)
    try:
        result = evaluate(expression, {"traits": dict(typed)})
    except CelError as exc:
        _count_error(collection, trait, "expr", exc)
        return None
    if isinstance(result, bool):
        return "true" if result else "false"
    if isinstance(result, str):
        return text(result)
    value = to_decimal(result)
    if value is None:
        error = CelError(f"result is not a bool, string or finite number: {type(result).__name__}")
        _count_error(collection, trait, "expr", error)
    return value


def _count_error(collection: Collection, trait: Trait, part: str, exc: CelError) -> None:
    metrics.rules_eval_errors_total.labels(collection.name, trait.name, part).inc()
    log.debug("rules_eval_error", collection=collection.name, trait=trait.name, part=part,
              error=str(exc))  # fmt: skip


def _cel_arg(value: Any, arg_type: str | None) -> Any:
    """An event argument as CEL sees it: the ABI's integers as numbers, the rest as decoded."""
    if is_integer_arg(arg_type, value):
        parsed = number(value)
        return value if parsed is None else from_decimal(parsed)
    return value


def _typed(trait: Trait, value: Value) -> Any:
    """A trait as computed traits read it: numbers as CEL numbers, text as text; a trait with
    no value reads as its default (null without one)."""
    if value is None:
        return trait.default
    if isinstance(value, Decimal):
        return from_decimal(value)
    if isinstance(value, str):
        return value
    return {holder: from_decimal(amount) for holder, amount in value.items()}


def _state_text(trait: Trait, value: Value) -> str:
    if value is None:
        return UNKNOWN if trait.default is None else str(trait.default)
    if isinstance(value, Decimal):
        return _decimal_str(value)
    if isinstance(value, str):
        return value
    # A holder map: canonical JSON (sorted, amounts as decimal text), bounded by max_holders.
    holders = {holder: _decimal_str(amount) for holder, amount in value.items()}
    return orjson.dumps(holders, option=orjson.OPT_SORT_KEYS).decode()


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
