"""EventDecoder: round trips against eth_abi, malformed input, and parity with web3.py."""

from __future__ import annotations

import time
from typing import Any

import pytest
from eth_abi.abi import encode
from eth_utils.crypto import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3

from dnft.errors import DecodeError
from dnft.rpc import RawLog
from indexer import DecodedEvent, EventDecoder
from tests.support.abi import TRANSFER, event_abi, make_log, normalise_web3

STATIC_TYPES = [
    "address", "bool", "uint8", "uint16", "uint24", "uint64", "uint128", "uint256",
    "int8", "int24", "int64", "int256", "bytes1", "bytes4", "bytes20", "bytes32",
]  # fmt: skip


def topic_of(signature: str) -> str:
    return "0x" + keccak(text=signature).hex()


def transfer_log(sender: int = 1, to: int = 2, value: int = 5) -> RawLog:
    return make_log(
        [
            topic_of("Transfer(address,address,uint256)"),
            "0x" + encode(["address"], ["0x" + f"{sender:040x}"]).hex(),
            "0x" + encode(["address"], ["0x" + f"{to:040x}"]).hex(),
        ],
        encode(["uint256"], [value]),
    )


def strategy_for(abi_type: str) -> st.SearchStrategy[Any]:
    if abi_type == "address":
        return st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
    if abi_type == "bool":
        return st.booleans()
    if abi_type.startswith("uint"):
        return st.integers(0, 2 ** int(abi_type[4:]) - 1)
    if abi_type.startswith("int"):
        bits = int(abi_type[3:])
        return st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    if abi_type.startswith("bytes") and abi_type != "bytes":
        n = int(abi_type[5:])
        return st.binary(min_size=n, max_size=n)
    raise AssertionError(abi_type)


def expected(abi_type: str, value: Any) -> Any:
    """Our output convention for a value eth_abi encoded."""
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if abi_type == "address":
        return value.lower()
    return value


class TestFromAbi:
    """Building decoders from ABIs and ``include`` filters."""

    def test_unknown_include_names_event_and_lists_abi_events(self) -> None:
        approval = event_abi("Approval", ("owner", "address", True))
        with pytest.raises(DecodeError) as info:
            EventDecoder.from_abi([TRANSFER, approval], include=["Transfer", "Mint"])
        assert "Mint" in str(info.value)
        assert "Transfer(address,address,uint256)" in str(info.value)
        assert "Approval(address)" in str(info.value)

    def test_include_by_name_and_signature(self) -> None:
        approval = event_abi("Approval", ("owner", "address", True))
        only = EventDecoder.from_abi([TRANSFER, approval], include=["Approval(address)"])
        assert only.signatures == ["Approval(address)"]
        assert only.decode(transfer_log()) is None

    def test_skips_non_events_and_anonymous(self) -> None:
        anon = event_abi("Anon", ("x", "uint256", False), anonymous=True)
        fn = {"type": "function", "name": "transfer", "inputs": []}
        decoder = EventDecoder.from_abi([TRANSFER, anon, fn])
        assert decoder.signatures == ["Transfer(address,address,uint256)"]
        with pytest.raises(DecodeError):
            EventDecoder.from_abi([TRANSFER, anon], include=["Anon"])

    def test_tuple_signature(self) -> None:
        ev = event_abi("Set", ("v", "tuple[]", False))
        ev["inputs"][0]["components"] = [
            {"name": "a", "type": "uint"},
            {"name": "b", "type": "string"},
        ]
        assert EventDecoder.from_abi([ev]).signatures == ["Set((uint256,string)[])"]

    def test_duplicate_names_rejected(self) -> None:
        with pytest.raises(DecodeError, match="duplicate"):
            EventDecoder.from_abi([event_abi("E", ("a", "uint256", False), ("a", "bool", False))])

    def test_topic0s(self) -> None:
        decoder = EventDecoder.from_abi([TRANSFER])
        assert decoder.topic0s == [topic_of("Transfer(address,address,uint256)")]


class TestStaticRoundTrip:
    """Every static type, indexed and not, decodes to what eth_abi encoded."""

    @pytest.mark.parametrize("abi_type", STATIC_TYPES)
    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def test_type(self, abi_type: str, data: st.DataObject) -> None:
        a = data.draw(strategy_for(abi_type))
        b = data.draw(strategy_for(abi_type))
        abi = event_abi("E", ("a", abi_type, True), ("b", abi_type, False), ("c", "uint8", False))
        decoder = EventDecoder.from_abi([abi])
        log = make_log(
            [topic_of(f"E({abi_type},{abi_type},uint8)"), "0x" + encode([abi_type], [a]).hex()],
            encode([abi_type, "uint8"], [b, 7]),
        )
        decoded = decoder.decode(log)
        assert decoded is not None
        assert decoded.args == {"a": expected(abi_type, a), "b": expected(abi_type, b), "c": 7}

    def test_metadata(self) -> None:
        decoded = EventDecoder.from_abi([TRANSFER]).decode(transfer_log(value=10**30))
        assert decoded == DecodedEvent(
            name="Transfer",
            args={"from": "0x" + "00" * 19 + "01", "to": "0x" + "00" * 19 + "02", "value": 10**30},
            address="0x" + "ab" * 20,
            block_number=0x1B4,
            block_hash="0x" + "11" * 32,
            tx_hash="0x" + "22" * 32,
            log_index=7,
        )

    def test_unknown_topic0_and_empty_topics(self) -> None:
        decoder = EventDecoder.from_abi([TRANSFER])
        assert decoder.decode(make_log(["0x" + "00" * 32], "0x")) is None
        assert decoder.decode(make_log([], "0x")) is None

    def test_uppercase_topic0_matches(self) -> None:
        log = transfer_log()
        log["topics"][0] = "0x" + log["topics"][0][2:].upper()
        assert EventDecoder.from_abi([TRANSFER]).decode(log) is not None

    def test_same_signature_different_indexing(self) -> None:
        erc721 = event_abi("Transfer", ("from", "address", True), ("to", "address", True),
                       ("tokenId", "uint256", True))  # fmt: skip
        decoder = EventDecoder.from_abi([TRANSFER, erc721])
        t = transfer_log()
        nft = make_log([*t["topics"], "0x" + encode(["uint256"], [9]).hex()], "0x")
        assert decoder.decode(t).args["value"] == 5  # type: ignore[union-attr]
        assert decoder.decode(nft).args["tokenId"] == 9  # type: ignore[union-attr]


RICH = event_abi(
    "Rich",
    ("who", "address", True),
    ("tag", "string", True),
    ("name", "string", False),
    ("blob", "bytes", False),
    ("ids", "uint256[]", False),
    ("pair", "int16[2]", False),
    ("owners", "address[]", False),
    ("flag", "bool", False),
    ("words", "string[]", False),
    ("s", "tuple", False),
)
RICH["inputs"][-1]["components"] = [
    {"name": "x", "type": "uint64"},
    {"name": "y", "type": "bytes"},
    {"name": "z", "type": "bytes3"},
]
RICH_DATA_TYPES = [
    "string", "bytes", "uint256[]", "int16[2]", "address[]", "bool", "string[]",
    "(uint64,bytes,bytes3)",
]  # fmt: skip
RICH_SIG = (
    "Rich(address,string,string,bytes,uint256[],int16[2],address[],bool,string[],"
    "(uint64,bytes,bytes3))"
)


def rich_log(values: list[Any], tag_hash: bytes = b"\x42" * 32) -> RawLog:
    return make_log(
        [
            topic_of(RICH_SIG),
            "0x" + encode(["address"], ["0x" + "cd" * 20]).hex(),
            "0x" + tag_hash.hex(),
        ],
        encode(RICH_DATA_TYPES, values),
    )


RICH_VALUES = [
    "héllo ✓",
    b"\x00\x01\xff",
    [1, 2**256 - 1],
    [-5, 300],
    ["0x" + "EF" * 20],
    True,
    ["a", "", "ccc"],
    (7, b"yy", b"abc"),
]


class TestDynamic:
    """Dynamic data goes through eth_abi and comes out in our conventions."""

    def test_rich_round_trip(self) -> None:
        decoded = EventDecoder.from_abi([RICH]).decode(rich_log(RICH_VALUES))
        assert decoded is not None
        assert decoded.args == {
            "who": "0x" + "cd" * 20,
            "tag": "0x" + "42" * 32,  # indexed string: only its hash
            "name": "héllo ✓",
            "blob": "0x0001ff",
            "ids": [1, 2**256 - 1],
            "pair": [-5, 300],
            "owners": ["0x" + "ef" * 20],
            "flag": True,
            "words": ["a", "", "ccc"],
            "s": {"x": 7, "y": "0x7979", "z": "0x616263"},
        }

    def test_invalid_utf8_is_replaced(self) -> None:
        ev = event_abi("Named", ("name", "string", False))
        data = encode(["bytes"], [b"ok\xff\xfe"])
        decoded = EventDecoder.from_abi([ev]).decode(make_log([topic_of("Named(string)")], data))
        assert decoded is not None
        assert decoded.args["name"] == "ok\ufffd\ufffd"

    def test_matches_web3_process_log(self) -> None:
        contract = Web3().eth.contract(abi=[RICH])
        log = rich_log(RICH_VALUES)
        ours = EventDecoder.from_abi([RICH]).decode(log)
        theirs = contract.events.Rich().process_log(log)
        assert ours is not None
        assert ours.args == normalise_web3(dict(theirs["args"]))
        assert ours.block_number == int(theirs["blockNumber"], 16)


class TestMalformed:
    """Logs that do not fit their ABI raise DecodeError with a reason, fast."""

    decoder = EventDecoder.from_abi([TRANSFER, RICH])

    def check(self, log: RawLog, reason: str) -> None:
        with pytest.raises(DecodeError, match=reason) as info:
            self.decoder.decode(log)
        assert "(" in str(info.value)  # names the event signature

    def test_wrong_topic_count(self) -> None:
        log = transfer_log()
        log["topics"] = log["topics"][:2]
        self.check(log, "expected 3 topics, got 2")

    def test_short_data(self) -> None:
        self.check(make_log(transfer_log()["topics"], "0x" + "00" * 31), "needs 32")

    def test_non_hex(self) -> None:
        log = transfer_log()
        log["data"] = "0x" + "zz" * 32
        self.check(log, "not 0x hex")
        log = transfer_log()
        log["topics"][1] = log["topics"][1][:-1] + "g"
        self.check(log, "topic 1")
        log = transfer_log()
        log["data"] = "0x" + " 1" * 32  # int() would accept spaces
        self.check(log, "not 0x hex")

    def test_address_padding(self) -> None:
        log = transfer_log()
        log["topics"][1] = "0x" + "ff" * 32
        self.check(log, "padding")

    def test_pending_log(self) -> None:
        self.check(make_log(transfer_log()["topics"], transfer_log()["data"], blockNumber=None),
                   "int")  # fmt: skip
        log = transfer_log()
        del log["logIndex"]  # type: ignore[misc]
        self.check(log, "logIndex")

    def test_claimed_length_beyond_data(self) -> None:
        ev = event_abi("Named", ("name", "string", False))
        decoder = EventDecoder.from_abi([ev])
        data = encode(["uint256", "uint256"], [32, 2**255]) + b"abc".ljust(32, b"\0")
        with pytest.raises(DecodeError, match="ends early"):
            decoder.decode(make_log([topic_of("Named(string)")], data))
        huge_array = encode(["uint256", "uint256"], [32, 10**30])
        ev2 = event_abi("Ids", ("ids", "uint256[]", False))
        with pytest.raises(DecodeError):
            EventDecoder.from_abi([ev2]).decode(make_log([topic_of("Ids(uint256[])")], huge_array))

    def test_aliased_pointers_do_not_blow_up(self) -> None:
        # uint256[][] whose 20k inner offsets all point at one 20k-element array: eth_abi
        # alone would build 400M ints from 1.3 MB of data.
        n = 20_000
        ev = event_abi("Nested", ("v", "uint256[][]", False))
        words = [32, n] + [32 * n] * n + [n] + list(range(n))
        data = b"".join(w.to_bytes(32, "big") for w in words)
        started = time.perf_counter()
        with pytest.raises(DecodeError, match="aliased"):
            EventDecoder.from_abi([ev]).decode(make_log([topic_of("Nested(uint256[][])")], data))
        assert time.perf_counter() - started < 5

    def test_bad_tuple_offset(self) -> None:
        data = bytearray(encode(RICH_DATA_TYPES, RICH_VALUES))
        data[0:32] = (2**64).to_bytes(32, "big")  # offset of ``name`` far past the end
        self.check(rich_log(RICH_VALUES) | {"data": "0x" + data.hex()}, "pointer")


hex_text = st.text("0123456789abcdefABCDEF", max_size=200)
junk_text = st.text(max_size=80)
topic = st.one_of(
    st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex()),
    hex_text.map(lambda s: "0x" + s),
    junk_text,
)


class TestProperties:
    """Random input yields a value or DecodeError, never another exception."""

    decoder = EventDecoder.from_abi([TRANSFER, RICH])
    topic0s = st.sampled_from([topic_of("Transfer(address,address,uint256)"), topic_of(RICH_SIG)])

    @settings(max_examples=400, deadline=None)
    @given(
        t0=topic0s,
        rest=st.lists(topic, max_size=4),
        data=st.one_of(
            st.binary(max_size=700).map(lambda b: "0x" + b.hex()),
            hex_text.map(lambda s: "0x" + s),
            junk_text,
        ),
    )
    def test_random_logs(self, t0: str, rest: list[str], data: str) -> None:
        try:
            result = self.decoder.decode(make_log([t0, *rest], data))
        except DecodeError:
            return
        assert isinstance(result, DecodedEvent)

    @settings(max_examples=300, deadline=None)
    @given(
        data=st.data(),
        cut=st.integers(0, 2000),
        flips=st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=6),
    )
    def test_corrupted_rich_logs(
        self, data: st.DataObject, cut: int, flips: list[tuple[int, int]]
    ) -> None:
        raw = bytearray(encode(RICH_DATA_TYPES, RICH_VALUES))
        for position, value in flips:
            if position < len(raw):
                raw[position] = value
        log = rich_log(RICH_VALUES) | {"data": "0x" + raw[: max(cut, len(raw) // 2)].hex()}
        try:
            result = self.decoder.decode(log)
        except DecodeError:
            return
        assert isinstance(result, DecodedEvent)
