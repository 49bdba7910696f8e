"""How a trait's matching events reduce to one value, and how ``where:`` conditions match.

Pure functions over events already in chain order. A reduction gives a number (Decimal), a
text (str) or None (no value: the trait's default). Every number read from an event goes
through the bounded parser of :mod:`dnft.numbers`; a value that is not a number within
bounds counts as 0 in ``sum`` and is skipped by ``max``/``min``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, Literal, TypeGuard, get_args

import orjson

from dnft.collection.abi import is_integer_arg
from dnft.numbers import BadNumber, parse_decimal

if TYPE_CHECKING:
    from dnft.collection.rules import Trait, Where
    from dnft.collection.state import TokenEvent

Reducer = Literal[
    "count", "sum", "last", "first", "max", "min", "distinct", "trait", "held_since", "balance"
]
# A holder's address (lowercase 0x hex) -> the amount it holds (``reduce: balance``).
Holders = Mapping[str, Decimal]
Value = Decimal | str | Holders | None

# What CEL expressions may read: 'args' (the event's arguments) in where:, 'traits' in expr:.
WHERE_VARIABLES: Final = frozenset({"args"})
EXPR_VARIABLES: Final = frozenset({"traits"})

# On-chain strings are untrusted: the state keeps at most this much of each (sanitising for
# prompts, HTML and file names happens where they are used).
MAX_STRING: Final = 200
UNSERIALISABLE: Final = "unserialisable"
# Integers that arrive as ints (not text) beyond this many bits are beyond the parser's bounds.
_MAX_INT_BITS: Final = 280
# ``reduce: balance`` without ``amount_arg``: the first of these a transfer carries is its
# amount (ERC-1155 TransferSingle's ``value``, a TransferBatch part's ``values``: each part
# holds its own id's amount, indexer.fanout); a transfer with none moves 1 (ERC-721).
DEFAULT_AMOUNT_ARGS: Final = ("value", "values", "amount")
# Mints come from it and burns go to it: it is nobody's balance.
_ZERO_ADDRESS: Final = "0x" + "0" * 40
_ADDRESS: Final = re.compile(r"0x[0-9a-fA-F]{40}")


@dataclass(frozen=True, slots=True)
class ReducerSpec:
    needs_arg: bool
    doc: str
    run: Callable[[Trait, Sequence[TokenEvent], Mapping[str, str]], Value]


def _count(trait: Trait, events: Sequence[TokenEvent], types: Mapping[str, str]) -> Value:
    return Decimal(len(events))


def _sum(trait: Trait, events: Sequence[TokenEvent], types: Mapping[str, str]) -> Value:
    return sum((number(e.args.get(trait.arg or "")) or Decimal(0) for e in events), Decimal(0))


def _last(trait: Trait, events: Sequence[TokenEvent], types: Mapping[str, str]) -> Value:
    arg = trait.arg or ""
    return arg_value(events[-1].args.get(arg), types.get(arg)) if events else None


def _first(trait: Trait, events: Sequence[TokenEvent], types: Mapping[str, str]) -> Value:
    arg = trait.arg or ""
    return arg_value(events[0].args.get(arg), types.get(arg)) if events else None


def _extreme(pick: Callable[[list[Decimal]], Decimal]) -> Callable[..., Value]:
    def run(trait: Trait, events: Sequence[TokenEvent], types: Mapping[str, str]) -> Value:
        values = [n for e in events if (n := number(e.args.get(trait.arg or ""))) is not None]
        return pick(values) if values else None

    return run


def _distinct(trait: Trait, events: Sequence[TokenEvent], types: Mapping[str, str]) -> Value:
    arg = trait.arg or ""
    return Decimal(len({text(e.args[arg]) for e in events if arg in e.args}))


def _trait(trait: Trait, events: Sequence[TokenEvent], types: Mapping[str, str]) -> Value:
    keyed = [e for e in events if e.args.get(trait.key_arg) == trait.key]
    if not keyed:
        return None
    return arg_value(keyed[-1].args.get(trait.value_arg), types.get(trait.value_arg))


def _held_since(trait: Trait, events: Sequence[TokenEvent], types: Mapping[str, str]) -> Value:
    if not events:
        return None
    last = events[-1]
    return Decimal(last.block_timestamp if last.block_timestamp is not None else last.block_number)


def _balance(trait: Trait, events: Sequence[TokenEvent], types: Mapping[str, str]) -> Value:
    totals = balances(trait, events)
    if trait.output == "total":
        return sum(totals.values(), Decimal(0))
    if trait.output == "count":
        return Decimal(len(totals))
    # The largest holders, ties by address: a bounded, deterministic map.
    kept = sorted(totals.items(), key=lambda item: (-item[1], item[0]))[: trait.max_holders]
    return dict(sorted(kept))


def balances(trait: Trait, events: Sequence[TokenEvent]) -> dict[str, Decimal]:
    """Holder -> amount after ``events`` (transfers in chain order): each moves its amount
    from ``from_arg`` to ``to_arg``; the zero address (mint, burn) holds nothing, and a holder
    left with zero or less (a transfer before the first event read) is dropped. A transfer
    whose addresses or amount are not readable (not 0x addresses, not a number >= 0) is
    skipped: holders are addresses, so the map's text stays bounded."""
    held: dict[str, Decimal] = {}
    for event in events:
        source, target = event.args.get(trait.from_arg), event.args.get(trait.to_arg)
        amount = _amount(trait, event.args)
        if not (_is_address(source) and _is_address(target)) or amount is None or amount < 0:
            continue
        for holder, change in ((source.lower(), -amount), (target.lower(), amount)):
            if holder != _ZERO_ADDRESS:
                held[holder] = held.get(holder, Decimal(0)) + change
    return {holder: amount for holder, amount in held.items() if amount > 0}


def _is_address(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and _ADDRESS.fullmatch(value) is not None


def _amount(trait: Trait, args: Mapping[str, Any]) -> Decimal | None:
    if trait.amount_arg is not None:
        return number(args.get(trait.amount_arg))
    name = next((n for n in DEFAULT_AMOUNT_ARGS if n in args), None)
    return Decimal(1) if name is None else number(args[name])


REDUCERS: Final[Mapping[str, ReducerSpec]] = {
    "count": ReducerSpec(False, "how many matching events", _count),
    "sum": ReducerSpec(True, "the sum of `arg` over matching events (non-numbers count 0)", _sum),
    "last": ReducerSpec(True, "`arg` of the latest matching event", _last),
    "first": ReducerSpec(True, "`arg` of the earliest matching event", _first),
    "max": ReducerSpec(True, "the largest numeric `arg` of matching events", _extreme(max)),
    "min": ReducerSpec(True, "the smallest numeric `arg` of matching events", _extreme(min)),
    "distinct": ReducerSpec(
        True, "how many distinct values `arg` took over matching events", _distinct
    ),
    "trait": ReducerSpec(
        False,
        "the `value_arg` of the latest matching event whose `key_arg` equals `key` "
        "(a key/value event such as `TraitSet(tokenId, key, value)`)",
        _trait,
    ),
    "held_since": ReducerSpec(
        False, "block timestamp (else number) of the latest matching event", _held_since
    ),
    "balance": ReducerSpec(
        False,
        "the token's balance per holder after its transfers (each moves `amount_arg` from "
        "`from_arg` to `to_arg`): `output: holders` (default) a map address -> amount (zero "
        "dropped, the `max_holders` largest kept), `total` the sum held, `count` how many hold",
        _balance,
    ),
}
assert set(REDUCERS) == set(get_args(Reducer))


def matches(where: Where, args: Mapping[str, Any], arg_type: str | None) -> bool:
    """Whether an event's argument passes a ``{arg, equals | one_of}`` condition."""
    if where.arg not in args:
        return False
    value = args[where.arg]
    expected = [where.equals] if where.one_of is None else where.one_of
    return any(_same(value, e, arg_type) for e in expected)


def _same(value: Any, expected: str | int | bool | None, arg_type: str | None) -> bool:
    if isinstance(expected, bool) or isinstance(value, bool):
        return value is expected
    if isinstance(expected, int) or is_integer_arg(arg_type, value):
        a, b = number(value), number(expected)
        return a is not None and b is not None and a == b
    if not isinstance(value, str) or not isinstance(expected, str):
        return False
    if arg_type == "address" or (value.startswith("0x") and expected.startswith("0x")):
        return value.lower() == expected.lower()
    return value == expected


def arg_value(value: Any, arg_type: str | None) -> Value:
    """An event argument as a trait keeps it: a number for the ABI's integer types (when it is
    one within bounds), else text cut to MAX_STRING; None when the event lacks it."""
    if value is None:
        return None
    if is_integer_arg(arg_type, value):
        parsed = number(value)
        if parsed is not None:
            return parsed
    return text(value)


def text(value: Any) -> str:
    if isinstance(value, str):
        return value[:MAX_STRING]
    try:
        return orjson.dumps(value, default=str).decode()[:MAX_STRING]
    except orjson.JSONEncodeError:  # beyond 64-bit ints, nesting deeper than 255
        return UNSERIALISABLE


def number(value: Any) -> Decimal | None:
    """An event argument or trait as a bounded number; None when it is not one.

    Arguments are untrusted text (``setTrait(id, "fed", "1e999999999")``): they go through
    the shared bounded parser, so no huge exponent ever reaches ``format`` or arithmetic."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > _MAX_INT_BITS:
            return None
        value = str(value)
    if not isinstance(value, str):
        return None
    try:
        return parse_decimal(value)
    except BadNumber:
        return None
