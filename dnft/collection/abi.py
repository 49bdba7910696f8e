"""The events a collection's contract can emit, read from its ABI file: what rules are checked
against at load (an event or argument a trait names must exist) and where the CEL types of
arguments come from (integers are numbers in CEL, though they travel as decimal strings).

Argument names follow the indexer (``indexer.abi.arg_name``): an unnamed argument is ``_<i>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from dnft.errors import ConfigError

# event name -> argument name -> ABI type ("uint256", "address", "string", ...)
EventArgs = Mapping[str, Mapping[str, str]]


def read_abi_events(path: Path, key: str) -> dict[str, dict[str, str]]:
    """The events of the ABI in ``path`` (a list, or a build artifact holding ``abi``);
    ConfigError under ``key`` when it cannot be read. An overloaded event name gets the union
    of its overloads' arguments."""
    try:
        raw = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ConfigError(key, f"cannot read ABI file {path}: {exc}") from None
    except orjson.JSONDecodeError as exc:
        raise ConfigError(key, f"{path} is not JSON: {exc}") from None
    abi = raw.get("abi", raw) if isinstance(raw, dict) else raw
    if not isinstance(abi, list):
        raise ConfigError(key, f"{path} holds no ABI list")
    return events_of(abi)


def events_of(abi: list[Any]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for item in abi:
        if not isinstance(item, dict) or item.get("type") != "event":
            continue
        name = item.get("name")
        inputs = item.get("inputs") or []
        if not isinstance(name, str) or not isinstance(inputs, list):
            continue
        args = out.setdefault(name, {})
        for i, param in enumerate(inputs):
            if isinstance(param, dict):
                args.setdefault(_arg_name(param, i), str(param.get("type", "")))
    return out


def is_integer_type(abi_type: str | None) -> bool:
    """uint<N> / int<N> (not arrays): values the indexer sends as decimal strings."""
    return abi_type is not None and abi_type.startswith(("uint", "int")) and "[" not in abi_type


def is_integer_arg(abi_type: str | None, value: Any) -> bool:
    """Whether ``value`` of an argument typed ``abi_type`` is an integer: an integer type, or
    one item of an integer array (a fanned-out ERC-1155 batch part carries its own id and
    amount as scalars where the ABI has ``uint256[]``)."""
    if is_integer_type(abi_type):
        return True
    if abi_type is None or isinstance(value, list) or not abi_type.endswith("[]"):
        return False
    return is_integer_type(abi_type[:-2])


def _arg_name(param: Mapping[str, Any], position: int) -> str:
    name = param.get("name")
    return name if isinstance(name, str) and name else f"_{position}"
