"""Event values cut to size at the edge: what a holder writes on chain reaches Kafka bounded.

Anyone can call ``setTrait(id, key, value)`` with a 300 KB string; as JSON (control characters
escape to six bytes each) that is a message over Kafka's 1 MiB cap, which the producer refuses
forever. So the decoder cuts, in the values eth_abi decoded (strings still as raw bytes):

* a ``string`` or ``bytes`` value longer than ``max_value_bytes`` (a string on a UTF-8
  character boundary), and any value once the event's :data:`EVENT_VALUE_BYTES` are spent;
* an array to what is left of ``max_array_items``, an event-wide budget (nested arrays'
  items count too: ``uint256[][]`` cannot hold a million items);
* a batch's fanned-out arrays (ERC-1155 ``ids`` and ``values``: :func:`parts_bounder`) to
  ``max_batch_parts`` items each, outside that budget: each item becomes its own message of
  scalars (``indexer.fanout``), so they never make one message large.

A string holding NUL is also changed: Postgres cannot store U+0000 in text or jsonb, so a
token state or an event row carrying it would be refused downstream (the event dead-lettered,
the holder's change lost). Each NUL becomes U+FFFD (the replacement character) and the string
is recorded like a cut, with the digest of what the chain holds.

Each cut is recorded by argument path (``value``, ``ids``, ``order.note``: tuple fields
joined by dots) with the full value's digest, so anyone can check the cut value against the
chain:

* string/bytes: ``{"sha256": <hex of the full on-chain bytes>, "bytes": <full byte length>}``;
* array: ``{"sha256": <hex of the full array's canonical JSON>, "items": <full item count>}``,
  the canonical JSON being the message's JSON form of the array (integers as decimal
  strings, bytes as 0x hex, invalid UTF-8 replaced) serialised by orjson with sorted keys.
  An array is recorded once, by its own path, when it or anything inside it was cut: the
  number of records is bounded by the ABI, never by what the holder sent (the message
  schema allows 64).

The event is never dropped. Pure CPU; the bounders are immutable, the budget is per event.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from indexer.abi import arg_name, converter, split_array
from indexer.publish import jsonable

__all__ = [
    "EVENT_VALUE_BYTES",
    "NUL_REPLACEMENT",
    "Bounder",
    "Budget",
    "ValueLimits",
    "bounder",
    "parts_bounder",
]

# String and bytes content kept per event, whatever max_value_bytes says: with JSON's worst
# case of 6 bytes per byte kept, the cut message stays far below 1 MiB (README: "Bounds at
# the edge" has the sum).
EVENT_VALUE_BYTES: Final = 64 * 1024
_UTF8_CONTINUATION: Final = 0xC0
_NUL: Final = b"\x00"
NUL_REPLACEMENT: Final = "\ufffd".encode()


@dataclass(frozen=True, slots=True)
class ValueLimits:
    """``networks[].max_value_bytes``, ``max_array_items`` and ``max_batch_parts``."""

    max_value_bytes: int = 4096
    max_array_items: int = 1024
    max_batch_parts: int = 10_000


@dataclass(slots=True)
class Budget:
    """What one event may still keep, and the cuts made so far (path -> record)."""

    limits: ValueLimits
    value_bytes: int = EVENT_VALUE_BYTES
    items: int = 0
    cuts: dict[str, dict[str, Any]] = field(default_factory=dict)
    cut_count: int = 0  # every cut, recorded or inside an array
    in_array: int = 0  # depth of arrays around the value being bounded

    def __post_init__(self) -> None:
        self.items = self.limits.max_array_items


Bounder = Callable[[Any, str, Budget], Any]
"""Bounds one eth_abi value (decoded with ``for_decoding`` types) at an argument path."""


def bounder(param: dict[str, Any]) -> Bounder | None:
    """The bounder of an ABI param's values, or None for types that cannot be long."""
    base, dims = split_array(str(param["type"]))
    if dims:
        return _array(param, base + dims[: dims.rindex("[")])
    if base == "tuple":
        return _tuple(param["components"])
    if base == "string":
        return _string
    if base == "bytes":
        return _blob
    return None


def _string(value: bytes, path: str, budget: Budget) -> bytes:
    if _NUL not in value:
        return _blob(value, path, budget)
    cuts_before = budget.cut_count
    kept = _blob(value.replace(_NUL, NUL_REPLACEMENT), path, budget)
    if budget.cut_count == cuts_before:
        budget.cut_count += 1
    if not budget.in_array:  # the digest of what the chain holds, not of the storable form
        budget.cuts[path] = {"sha256": hashlib.sha256(value).hexdigest(), "bytes": len(value)}
    return kept


def _blob(value: bytes, path: str, budget: Budget) -> bytes:
    keep = min(len(value), budget.limits.max_value_bytes, budget.value_bytes)
    if keep < len(value):
        budget.cut_count += 1
        if not budget.in_array:
            budget.cuts[path] = {"sha256": hashlib.sha256(value).hexdigest(), "bytes": len(value)}
        keep = _char_boundary(value, keep)
        value = value[:keep]
    budget.value_bytes -= keep
    return value


def _char_boundary(value: bytes, at: int) -> int:
    """``at``, moved back to the start of the UTF-8 character it falls in (for bytes that are
    not UTF-8 the cut may land anywhere: at most 3 steps back)."""
    for back in range(4):
        if at - back <= 0 or value[at - back] & _UTF8_CONTINUATION != 0x80:
            return max(at - back, 0)
    return at


def _array(param: dict[str, Any], item_type: str) -> Bounder:
    inner = bounder({**param, "type": item_type})
    full_json = converter(param)

    def array(value: tuple[Any, ...], path: str, budget: Budget) -> tuple[Any, ...]:
        keep = min(len(value), budget.items)
        budget.items -= keep
        cuts_before = budget.cut_count
        kept = value[:keep]
        if inner is not None:
            budget.in_array += 1
            kept = tuple(inner(v, path, budget) for v in kept)
            budget.in_array -= 1
        if keep < len(value) or budget.cut_count > cuts_before:
            budget.cut_count += 1
            if not budget.in_array:
                budget.cuts[path] = _array_record(full_json, value)
        return kept

    return array


def parts_bounder(param: dict[str, Any]) -> Bounder:
    """The bounder of a batch's fanned-out array (a ``uint[]`` of ids or of amounts, checked
    by the token configuration): at most ``max_batch_parts`` items, recorded as a cut beyond,
    and none of the event's ``max_array_items`` spent (each item is published as a scalar of
    its own part, ``indexer.fanout``). The whole array was decoded already: its size is
    bounded by the log's data, which ``networks[].max_response_bytes`` bounds."""
    full_json = converter(param)

    def parts(value: tuple[Any, ...], path: str, budget: Budget) -> tuple[Any, ...]:
        keep = budget.limits.max_batch_parts
        if len(value) <= keep:
            return value
        budget.cut_count += 1
        if not budget.in_array:
            budget.cuts[path] = _array_record(full_json, value)
        return value[:keep]

    return parts


def _array_record(full_json: Callable[[Any], Any], value: tuple[Any, ...]) -> dict[str, Any]:
    """The cut record of an array: its full canonical JSON's sha256 and its item count."""
    canonical = orjson.dumps(jsonable(full_json(value)), option=orjson.OPT_SORT_KEYS)
    return {"sha256": hashlib.sha256(canonical).hexdigest(), "items": len(value)}


def _tuple(components: list[dict[str, Any]]) -> Bounder | None:
    fields = [(arg_name(c, i), bounder(c)) for i, c in enumerate(components)]
    if all(b is None for _, b in fields):
        return None

    def tuple_(value: tuple[Any, ...], path: str, budget: Budget) -> tuple[Any, ...]:
        return tuple(
            v if b is None else b(v, f"{path}.{name}", budget)
            for (name, b), v in zip(fields, value, strict=True)
        )

    return tuple_
