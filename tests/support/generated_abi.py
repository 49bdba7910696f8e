"""Generated ABI events for property tests of the decoder (hypothesis): kinds of ABI types
with values, events (schemas) mixing them in any order, their logs as eth_abi encodes them,
and what eth_abi (strict) reads back, to cross-check every decode."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak
from hypothesis import strategies as st

from dnft.errors import DecodeError
from dnft.rpc import RawLog
from indexer import DecodedEvent, EventDecoder
from tests.support.abi import make_log


def to_hex(value: bytes) -> str:
    """``0x`` and lowercase hex."""
    return "0x" + value.hex()


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


@dataclass(frozen=True)
class Kind:
    """One ABI type: its ABI JSON, its eth_abi type (strings read as bytes), values, normaliser."""

    param: dict[str, Any]
    abi_type: str  # canonical, for the signature and for encoding
    read_type: str  # what eth_abi decodes for the cross-check: string -> bytes
    values: st.SearchStrategy[Any]
    normalise: Callable[[Any], Any]  # eth_abi's value (or a generated one) -> our convention


def _int_kind(bits: int, signed: bool) -> Kind:
    name = f"{'' if signed else 'u'}int{bits}"
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    return Kind({"type": name}, name, name, st.integers(low, high), int)


def _bytes_n(n: int) -> Kind:
    return Kind(
        {"type": f"bytes{n}"}, f"bytes{n}", f"bytes{n}", st.binary(min_size=n, max_size=n), to_hex
    )


ADDRESS = Kind(
    {"type": "address"},
    "address",
    "address",
    st.binary(min_size=20, max_size=20).map(to_hex),
    str.lower,
)
BOOL = Kind({"type": "bool"}, "bool", "bool", st.booleans(), bool)
STATIC_KINDS = [
    ADDRESS,
    BOOL,
    _int_kind(8, False),
    _int_kind(64, False),
    _int_kind(256, False),
    _int_kind(8, True),
    _int_kind(128, True),
    _int_kind(256, True),
    _bytes_n(1),
    _bytes_n(16),
    _bytes_n(32),
]
# Chain strings are arbitrary UTF-8; eth_abi cannot encode lone surrogates, so leave them out.
UTF8_TEXT = st.text(st.characters(codec="utf-8"), max_size=80)
STRING = Kind({"type": "string"}, "string", "bytes", UTF8_TEXT, _text)
BYTES = Kind({"type": "bytes"}, "bytes", "bytes", st.binary(max_size=100), to_hex)
TUPLE = Kind(
    {
        "type": "tuple",
        "components": [
            {"name": "x", "type": "uint64"},
            {"name": "y", "type": "bytes"},
            {"name": "z", "type": "string"},
        ],
    },
    "(uint64,bytes,string)",
    "(uint64,bytes,bytes)",
    st.tuples(st.integers(0, 2**64 - 1), st.binary(max_size=40), UTF8_TEXT),
    lambda v: {"x": v[0], "y": to_hex(v[1]), "z": _text(v[2])},
)


def _array(inner: Kind, size: int | None) -> Kind:
    dims = f"[{size}]" if size is not None else "[]"
    values = st.lists(inner.values, min_size=size or 0, max_size=size if size is not None else 5)
    return Kind(
        {**inner.param, "type": inner.param["type"] + dims},
        inner.abi_type + dims,
        inner.read_type + dims,
        values,
        lambda v: [inner.normalise(x) for x in v],
    )


DYNAMIC_KINDS = [
    STRING,
    BYTES,
    TUPLE,
    _array(_int_kind(256, False), None),
    _array(ADDRESS, None),
    _array(_int_kind(16, True), 2),
    _array(_bytes_n(3), None),
    _array(STRING, None),
    _array(TUPLE, None),
]
DATA_KINDS = STATIC_KINDS + DYNAMIC_KINDS


@dataclass(frozen=True)
class Schema:
    """A generated event: its ABI entry and its indexed and data inputs, in order."""

    abi: dict[str, Any]
    topic_kinds: list[Kind]
    data_kinds: list[Kind]

    @property
    def topic0(self) -> str:
        return to_hex(keccak(text=signature(self.abi)))

    @property
    def decoder(self) -> EventDecoder:
        return EventDecoder.from_abi([self.abi])


def signature(abi: dict[str, Any]) -> str:
    def canonical(p: dict[str, Any]) -> str:
        t = str(p["type"])
        if t.startswith("tuple"):
            return "(" + ",".join(canonical(c) for c in p["components"]) + ")" + t[5:]
        return t

    return f"{abi['name']}({','.join(canonical(p) for p in abi['inputs'])})"


@st.composite
def schemas(draw: st.DrawFn, data_kinds: list[Kind] = DATA_KINDS, min_data: int = 0) -> Schema:
    topic_kinds = draw(st.lists(st.sampled_from(STATIC_KINDS), max_size=3))
    data = draw(st.lists(st.sampled_from(data_kinds), min_size=min_data, max_size=5))
    flags = [True] * len(topic_kinds) + [False] * len(data)
    order = draw(st.permutations(range(len(flags))))
    kinds = topic_kinds + data
    inputs = [
        {**kinds[i].param, "name": f"a{position}", "indexed": flags[i]}
        for position, i in enumerate(order)
    ]
    abi = {"type": "event", "name": "E", "anonymous": False, "inputs": inputs}
    ordered = [kinds[i] for i in order]
    return Schema(
        abi,
        [k for k, i in zip(ordered, order, strict=True) if flags[i]],
        [k for k, i in zip(ordered, order, strict=True) if not flags[i]],
    )


def encoded(schema: Schema, topic_values: list[Any], data_values: list[Any]) -> RawLog:
    topics = [schema.topic0] + [
        to_hex(abi_encode([k.abi_type], [v]))
        for k, v in zip(schema.topic_kinds, topic_values, strict=True)
    ]
    data = abi_encode([k.abi_type for k in schema.data_kinds], data_values)
    return make_log(topics, to_hex(data))


def expected_args(
    schema: Schema, topic_values: list[Any], data_values: list[Any]
) -> dict[str, Any]:
    """Our output for the values, from the ABI's input order."""
    topic_iter = iter(zip(schema.topic_kinds, topic_values, strict=True))
    data_iter = iter(zip(schema.data_kinds, data_values, strict=True))
    args = {}
    for param in schema.abi["inputs"]:
        kind, value = next(topic_iter if param["indexed"] else data_iter)
        args[param["name"]] = kind.normalise(value)
    return args


def eth_abi_reading(schema: Schema, log: RawLog) -> dict[str, Any] | None:
    """What eth_abi (strict) reads from the log's topics and data, or None if it refuses."""
    try:
        topic_values = [
            abi_decode([k.read_type], bytes.fromhex(t[2:]))[0]
            for k, t in zip(schema.topic_kinds, log["topics"][1:], strict=True)
        ]
        data_values = list(
            abi_decode([k.read_type for k in schema.data_kinds], bytes.fromhex(log["data"][2:]))
        )
    except Exception:  # eth_abi raises assorted types on malformed input
        return None
    return expected_args(schema, topic_values, data_values)


@st.composite
def schema_and_values(
    draw: st.DrawFn, data_kinds: list[Kind] = DATA_KINDS, min_data: int = 0
) -> tuple[Schema, list[Any], list[Any]]:
    schema = draw(schemas(data_kinds, min_data))
    topic_values = [draw(k.values) for k in schema.topic_kinds]
    data_values = [draw(k.values) for k in schema.data_kinds]
    return schema, topic_values, data_values


def decode_or_error(decoder: EventDecoder, log: RawLog) -> DecodedEvent | DecodeError | None:
    """The decoder's answer; any exception other than DecodeError fails the test."""
    try:
        return decoder.decode(log)
    except DecodeError as exc:
        error = exc
    assert str(error).startswith(("E(", "log topics"))  # names the event, or the problem
    return error


def assert_reads_as_eth_abi(schema: Schema, log: RawLog) -> None:
    """Our decoder refuses ``log`` exactly when eth_abi cannot read it, and otherwise reads
    the same arguments."""
    ours = decode_or_error(schema.decoder, log)
    theirs = eth_abi_reading(schema, log)
    if isinstance(ours, DecodeError):
        assert theirs is None, f"we refused what eth_abi reads: {ours}"
    else:
        assert ours is not None
        assert ours.args == theirs
