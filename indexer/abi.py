"""ABI types for the event decoder: canonical type names, one-word decoders, value converters.

The word decoders are the hot path of ``indexer.decode``: each reads one 32-byte word as the
64 hex characters the node sent, validates its padding and returns the value in the
decoder's output conventions (lowercase ``0x`` hex for addresses and bytes, ``int``/``bool``
as such). Every one raises ValueError for an invalid word. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

__all__ = [
    "WordDecoder",
    "arg_name",
    "canonical",
    "converter",
    "hash_word",
    "is_dynamic_or_composite",
    "split_array",
    "static_word_decoder",
]

_ARRAY_SUFFIX: Final = re.compile(r"^(.*?)((?:\[\d*\])*)$")
_INT_TYPE: Final = re.compile(r"(u?)int(\d*)")
_BYTES_N: Final = re.compile(r"bytes(\d+)")
_Z64: Final = "0" * 64
_ONE: Final = "0" * 63 + "1"

WordDecoder = Callable[[str], Any]
"""Decodes one 32-byte ABI word given as 64 hex characters; raises ValueError if invalid."""


# --- word decoders (hot path) ----------------------------------------------------------------


def _address(word: str) -> str:
    if word[:24] != "000000000000000000000000":
        raise ValueError("address word has non-zero padding")
    return "0x" + word[24:].lower()


def _uint256(word: str) -> int:
    return int(word, 16)


def _bool(word: str) -> bool:
    if word == _ONE:
        return True
    if word == _Z64:
        return False
    raise ValueError("bool word is neither 0 nor 1")


def hash_word(word: str) -> str:
    return "0x" + word.lower()


def _make_uint(bits: int) -> WordDecoder:
    if bits == 256:
        return _uint256
    limit = 1 << bits

    def uint(word: str) -> int:
        value = int(word, 16)
        if value >= limit:
            raise ValueError(f"value does not fit uint{bits}")
        return value

    return uint


def _make_int(bits: int) -> WordDecoder:
    low, high = -(1 << (bits - 1)), 1 << (bits - 1)

    def int_(word: str) -> int:
        value = int(word, 16)
        if value >> 255:  # two's complement over the full 256-bit word
            value -= 1 << 256
        if not low <= value < high:
            raise ValueError(f"value does not fit int{bits} (bad sign extension)")
        return value

    return int_


def _make_bytes_n(n: int) -> WordDecoder:
    width = 2 * n
    padding = "0" * (64 - width)

    def bytes_n(word: str) -> str:
        if word[width:] != padding:
            raise ValueError(f"bytes{n} word has non-zero padding")
        return "0x" + word[:width].lower()

    return bytes_n


def static_word_decoder(abi_type: str) -> WordDecoder | None:
    """A hand decoder for a one-word elementary type, or None (eth_abi must decode it)."""
    if abi_type == "address":
        return _address
    if abi_type == "bool":
        return _bool
    if abi_type == "function":
        return _make_bytes_n(24)
    m = _INT_TYPE.fullmatch(abi_type)
    if m:
        bits = int(m.group(2) or 256)
        return _make_uint(bits) if m.group(1) else _make_int(bits)
    m = _BYTES_N.fullmatch(abi_type)
    if m:
        return _make_bytes_n(int(m.group(1)))
    return None


# --- ABI types ------------------------------------------------------------------------------

_ALIASES: Final = {
    "uint": "uint256",
    "int": "int256",
    "byte": "bytes1",
    "fixed": "fixed128x18",
    "ufixed": "ufixed128x18",
}


def split_array(abi_type: str) -> tuple[str, str]:
    m = _ARRAY_SUFFIX.match(abi_type)
    assert m is not None  # the pattern matches every string
    return m.group(1), m.group(2)


def canonical(param: dict[str, Any], *, for_decoding: bool = False) -> str:
    """The canonical type of an ABI param: tuples expanded, aliases resolved.

    With ``for_decoding``, ``string`` becomes ``bytes`` (same encoding) so invalid UTF-8
    can be decoded with replacement here, and ``function`` becomes ``bytes24``.
    """
    base, dims = split_array(str(param["type"]))
    if base == "tuple":
        inner = ",".join(canonical(c, for_decoding=for_decoding) for c in param["components"])
        base = f"({inner})"
    else:
        base = _ALIASES.get(base, base)
        if for_decoding:
            base = {"string": "bytes", "function": "bytes24"}.get(base, base)
    return base + dims


def is_dynamic_or_composite(param: dict[str, Any]) -> bool:
    """True for types that are hashed when indexed: string, bytes, arrays, tuples."""
    base, dims = split_array(str(param["type"]))
    return bool(dims) or base in ("string", "bytes", "tuple")


def _identity(value: Any) -> Any:
    return value


def converter(param: dict[str, Any]) -> Callable[[Any], Any]:
    """Maps eth_abi's value for ``param`` (decoded with ``for_decoding`` types) to ours."""
    base, dims = split_array(str(param["type"]))
    if dims:
        inner = converter({**param, "type": base + dims[: dims.rindex("[")]})
        if inner is _identity:
            return list
        return lambda value: [inner(v) for v in value]
    if base == "tuple":
        fields = [(arg_name(c, i), converter(c)) for i, c in enumerate(param["components"])]
        return lambda value: {name: conv(v) for (name, conv), v in zip(fields, value, strict=True)}
    base = _ALIASES.get(base, base)
    if base == "address":
        return str.lower
    if base == "string":
        return lambda value: value.decode("utf-8", errors="replace")
    if base == "bytes" or base == "function" or _BYTES_N.fullmatch(base):
        return lambda value: "0x" + value.hex()
    return _identity


def arg_name(param: dict[str, Any], position: int) -> str:
    name = param.get("name")
    return name if isinstance(name, str) and name else f"_{position}"
