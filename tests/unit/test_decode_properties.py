"""EventDecoder under generated ABIs and hostile logs: a right value or DecodeError, nothing else.

Every successful decode is cross-checked against eth_abi: values we encoded come back equal,
and a corrupted log that we still decode must decode to what eth_abi (strict) reads from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dnft.errors import DecodeError
from dnft.rpc import RawLog
from indexer import DecodedEvent, EventDecoder

FAST = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Kind:
    """One ABI type: its ABI JSON, its eth_abi type (strings read as bytes), values, normaliser."""

    param: dict[str, Any]
    abi_type: str  # canonical, for the signature and for encoding
    read_type: str  # what eth_abi decodes for the cross-check: string -> bytes
    values: st.SearchStrategy[Any]
    normalise: Callable[[Any], Any]  # eth_abi's value (or a generated one) -> our convention


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def _int_kind(bits: int, signed: bool) -> Kind:
    name = f"{'' if signed else 'u'}int{bits}"
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    return Kind({"type": name}, name, name, st.integers(low, high), int)


def _bytes_n(n: int) -> Kind:
    return Kind(
        {"type": f"bytes{n}"}, f"bytes{n}", f"bytes{n}", st.binary(min_size=n, max_size=n), _hex
    )


ADDRESS = Kind(
    {"type": "address"},
    "address",
    "address",
    st.binary(min_size=20, max_size=20).map(_hex),
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
BYTES = Kind({"type": "bytes"}, "bytes", "bytes", st.binary(max_size=100), _hex)
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
    lambda v: {"x": v[0], "y": _hex(v[1]), "z": _text(v[2])},
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
        return _hex(keccak(text=signature(self.abi)))

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


def make_log(topics: list[Any], data: Any, **overrides: Any) -> RawLog:
    log: dict[str, Any] = {
        "address": "0x" + "Ab" * 20,
        "topics": topics,
        "data": data,
        "blockNumber": "0x10",
        "blockHash": "0x" + "11" * 32,
        "transactionHash": "0x" + "22" * 32,
        "logIndex": "0x2",
        "removed": False,
    }
    log.update(overrides)
    return log  # type: ignore[return-value]


def encoded(schema: Schema, topic_values: list[Any], data_values: list[Any]) -> RawLog:
    topics = [schema.topic0] + [
        _hex(abi_encode([k.abi_type], [v]))
        for k, v in zip(schema.topic_kinds, topic_values, strict=True)
    ]
    data = abi_encode([k.abi_type for k in schema.data_kinds], data_values)
    return make_log(topics, _hex(data))


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


class TestGeneratedRoundTrip:
    """Values eth_abi encodes for any generated event decode back to themselves."""

    @FAST
    @given(case=schema_and_values())
    def test_round_trip(self, case: tuple[Schema, list[Any], list[Any]]) -> None:
        schema, topic_values, data_values = case
        decoded = schema.decoder.decode(encoded(schema, topic_values, data_values))
        assert decoded is not None
        assert decoded.args == expected_args(schema, topic_values, data_values)

    @FAST
    @given(case=schema_and_values(), extra=st.binary(min_size=1, max_size=100))
    def test_trailing_bytes_change_nothing(
        self, case: tuple[Schema, list[Any], list[Any]], extra: bytes
    ) -> None:
        """Offsets are absolute and lengths explicit: bytes past the encoding are never read
        (as in eth_abi and web3.py), so they cannot alter a value."""
        schema, topic_values, data_values = case
        log = encoded(schema, topic_values, data_values)
        log["data"] += extra.hex()
        decoded = schema.decoder.decode(log)
        assert decoded is not None
        assert decoded.args == expected_args(schema, topic_values, data_values)

    @settings(max_examples=30, deadline=3000)
    @given(
        length=st.integers(0, 300_000),
        unit=st.sampled_from(["a", "é", "✓", "\U0001f600", "\x00"]),
        blob=st.integers(0, 300_000),
    )
    def test_giant_dynamic_values(self, length: int, unit: str, blob: int) -> None:
        abi = {
            "type": "event",
            "name": "E",
            "inputs": [
                {"name": "s", "type": "string", "indexed": False},
                {"name": "b", "type": "bytes", "indexed": False},
            ],
        }
        schema = Schema(abi, [], [STRING, BYTES])
        text, data = unit * length, b"\xff" * blob
        decoded = schema.decoder.decode(encoded(schema, [], [text, data]))
        assert decoded is not None
        assert decoded.args == {"s": text, "b": _hex(data)}


class TestShortAndCorrupt:
    """Short or corrupted data is refused, or decodes to exactly what eth_abi reads."""

    @FAST
    @given(case=schema_and_values(min_data=1), data=st.data())
    def test_strict_prefix_is_refused(
        self, case: tuple[Schema, list[Any], list[Any]], data: st.DataObject
    ) -> None:
        schema, topic_values, data_values = case
        log = encoded(schema, topic_values, data_values)
        size = (len(log["data"]) - 2) // 2
        cut = data.draw(st.integers(0, size - 1))
        log["data"] = log["data"][: 2 + 2 * cut]
        answer = decode_or_error(schema.decoder, log)
        assert isinstance(answer, DecodeError), f"{cut}/{size} bytes decoded to {answer}"

    @FAST
    @given(case=schema_and_values(), data=st.data())
    def test_odd_hex_is_refused(
        self, case: tuple[Schema, list[Any], list[Any]], data: st.DataObject
    ) -> None:
        schema, topic_values, data_values = case
        log = encoded(schema, topic_values, data_values)
        log["data"] += data.draw(st.sampled_from("0123456789abcdef"))
        assert isinstance(decode_or_error(schema.decoder, log), DecodeError)

    @settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
    @given(
        case=schema_and_values(min_data=1),
        edits=st.lists(
            st.tuples(
                st.integers(0, 10_000),
                st.sampled_from([0, 1, 2, 0x1F, 0x20, 0x40, 0x7F, 0x80, 0xFF]),
            ),
            min_size=1,
            max_size=4,
        ),
    )
    def test_corrupted_data_matches_eth_abi(
        self,
        case: tuple[Schema, list[Any], list[Any]],
        edits: list[tuple[int, int]],
    ) -> None:
        schema, topic_values, data_values = case
        log = encoded(schema, topic_values, data_values)
        raw = bytearray(bytes.fromhex(log["data"][2:]))
        assume(raw)
        for position, value in edits:
            raw[position % len(raw)] = value
        log["data"] = _hex(bytes(raw))
        ours = decode_or_error(schema.decoder, log)
        theirs = eth_abi_reading(schema, log)
        if isinstance(ours, DecodeError):
            assert theirs is None, f"we refused what eth_abi reads: {ours}"
        else:
            assert ours is not None
            assert ours.args == theirs


class TestTopics:
    """Indexed values: any 32-byte word is read as eth_abi reads it; bad topics are refused."""

    @FAST
    @given(
        case=schema_and_values().filter(lambda c: bool(c[0].topic_kinds)),
        words=st.lists(st.binary(min_size=32, max_size=32), min_size=3, max_size=3),
        upper=st.booleans(),
    )
    def test_random_words_match_eth_abi(
        self, case: tuple[Schema, list[Any], list[Any]], words: list[bytes], upper: bool
    ) -> None:
        schema, topic_values, data_values = case
        log = encoded(schema, topic_values, data_values)
        log["topics"] = [schema.topic0] + [
            "0x" + (w.hex().upper() if upper else w.hex()) for w in words[: len(schema.topic_kinds)]
        ]
        ours = decode_or_error(schema.decoder, log)
        theirs = eth_abi_reading(schema, log)
        if isinstance(ours, DecodeError):
            assert theirs is None, f"we refused what eth_abi reads: {ours}"
        else:
            assert ours is not None
            assert ours.args == theirs

    @FAST
    @given(case=schema_and_values(), count=st.integers(0, 6))
    def test_wrong_topic_count_is_refused(
        self, case: tuple[Schema, list[Any], list[Any]], count: int
    ) -> None:
        schema, topic_values, data_values = case
        assume(count != len(schema.topic_kinds))
        log = encoded(schema, topic_values, data_values)
        log["topics"] = [schema.topic0] + ["0x" + "00" * 32] * count
        assert isinstance(decode_or_error(schema.decoder, log), DecodeError)

    @FAST
    @given(
        case=schema_and_values().filter(lambda c: bool(c[0].topic_kinds)),
        bad=st.one_of(
            st.text(max_size=70),
            st.binary(min_size=31, max_size=31).map(_hex),
            st.binary(min_size=33, max_size=33).map(_hex),
            st.binary(min_size=32, max_size=32).map(lambda b: b.hex()),  # no 0x
            st.integers(),
            st.none(),
        ),
        which=st.integers(0, 2),
    )
    def test_malformed_topic_is_refused(
        self, case: tuple[Schema, list[Any], list[Any]], bad: Any, which: int
    ) -> None:
        schema, topic_values, data_values = case
        log = encoded(schema, topic_values, data_values)
        index = 1 + which % len(schema.topic_kinds)
        assume(not (isinstance(bad, str) and len(bad) == 66 and bad.startswith("0x")))
        log["topics"][index] = bad
        assert isinstance(decode_or_error(schema.decoder, log), DecodeError)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)


class TestHostileLogFields:
    """Whatever a node puts in a log's fields, the decoder answers None, DecodeError or a
    well-typed event; it never raises anything else."""

    decoder = EventDecoder.from_abi(
        [
            {
                "type": "event",
                "name": "E",
                "inputs": [
                    {"name": "a", "type": "address", "indexed": True},
                    {"name": "v", "type": "uint256", "indexed": False},
                ],
            }
        ]
    )
    topic0 = _hex(keccak(text="E(address,uint256)"))

    @settings(max_examples=300, deadline=2000)
    @given(
        field=st.sampled_from(
            ["topics", "data", "address", "blockNumber", "blockHash", "transactionHash", "logIndex"]
        ),
        value=JSON_VALUES,
    )
    def test_any_field_value(self, field: str, value: Any) -> None:
        log = make_log([self.topic0, "0x" + "00" * 32], "0x" + "00" * 31 + "07")
        log[field] = value  # type: ignore[literal-required]
        answer = decode_or_error(self.decoder, log)
        if isinstance(answer, DecodedEvent):
            assert isinstance(answer.block_number, int)
            assert isinstance(answer.log_index, int)
            assert isinstance(answer.address, str)
            assert isinstance(answer.block_hash, str)
            assert isinstance(answer.tx_hash, str)
            assert answer.args == {"a": "0x" + "00" * 20, "v": 7}
