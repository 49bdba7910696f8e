"""EventDecoder under generated ABIs and hostile logs: a right value or DecodeError, nothing else.

Every successful decode is cross-checked against eth_abi: values we encoded come back equal,
and a corrupted log that we still decode must decode to what eth_abi (strict) reads from it.
"""

from __future__ import annotations

from typing import Any

from eth_utils.crypto import keccak
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dnft.errors import DecodeError
from indexer import DecodedEvent, EventDecoder
from tests.support.abi import make_log
from tests.support.generated_abi import (
    BYTES,
    STRING,
    Schema,
    assert_reads_as_eth_abi,
    decode_or_error,
    encoded,
    expected_args,
    schema_and_values,
    to_hex,
)

FAST = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


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
        assert decoded.args == {"s": text, "b": to_hex(data)}


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
        log["data"] = to_hex(bytes(raw))
        assert_reads_as_eth_abi(schema, log)


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
        assert_reads_as_eth_abi(schema, log)

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
            st.binary(min_size=31, max_size=31).map(to_hex),
            st.binary(min_size=33, max_size=33).map(to_hex),
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
    topic0 = to_hex(keccak(text="E(address,uint256)"))

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
