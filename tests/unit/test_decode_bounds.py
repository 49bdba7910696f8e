"""Long event values are cut at decode, recorded with the full value's digest, and the event's
Kafka message stays far below 1 MiB (indexer/bounds.py, indexer/encode.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import orjson
import pytest
from eth_abi.abi import encode
from eth_utils.crypto import keccak

from dnft.config import ContractSettings
from dnft.validation import validate_message
from indexer import EventDecoder
from indexer.abi import canonical
from indexer.bounds import EVENT_VALUE_BYTES, NUL_REPLACEMENT, ValueLimits
from indexer.encode import ChunkEncoder, Contract
from indexer.publish import EventPublisher
from tests.support.abi import event_abi, make_log

LIMITS = ValueLimits()
KAFKA_CAP = 1024 * 1024
TRAIT_SET = event_abi(
    "TraitSet", ("tokenId", "uint256", True), ("key", "string", False), ("value", "string", False)
)
# Every kind of long value at once: the largest event a holder can make of one ABI.
WORST = event_abi(
    "Worst",
    ("tokenId", "uint256", True),
    ("a", "string", False),
    ("b", "string", False),
    ("many", "string[]", False),
    ("ids", "uint256[]", False),
)
HOSTILE_300KB = "\x01\x00\u200f\u202e" * 75_000  # control chars, NUL, RTL marks: ~300 KB


def topic_of(event: dict[str, Any]) -> str:
    types = ",".join(canonical(i) for i in event["inputs"])
    return "0x" + keccak(text=f"{event['name']}({types})").hex()


def trait_log(key: str, value: str | bytes, token: int = 2, log_index: int = 7) -> Any:
    raw = value if isinstance(value, bytes) else value.encode()
    return make_log(
        [topic_of(TRAIT_SET), "0x" + f"{token:064x}"],
        encode(["string", "bytes"], [key, raw]),  # a string is encoded as its bytes
        logIndex=hex(log_index),
    )


def decode(event: dict[str, Any], types: list[str], values: list[Any], **limits: int) -> Any:
    decoder = EventDecoder.from_abi([event], limits=ValueLimits(**limits))
    return decoder.decode(make_log([topic_of(event)], encode(types, values)))


class TestStrings:
    def test_a_long_string_is_cut_with_its_digest(self) -> None:
        event = EventDecoder.from_abi([TRAIT_SET], limits=LIMITS).decode(
            trait_log("mood", HOSTILE_300KB)
        )
        assert event is not None
        full = HOSTILE_300KB.encode()
        assert len(event.args["value"].encode()) <= LIMITS.max_value_bytes
        assert full.replace(b"\x00", NUL_REPLACEMENT).startswith(event.args["value"].encode())
        assert event.args["key"] == "mood"
        assert event.truncated == {
            "value": {"sha256": hashlib.sha256(full).hexdigest(), "bytes": len(full)}
        }

    def test_nul_becomes_the_replacement_character_and_is_recorded(self) -> None:
        # Postgres cannot store U+0000 in text or jsonb: left in, the holder's change would be
        # refused by every consumer that records it.
        raw = "calm\x00playful"
        event = EventDecoder.from_abi([TRAIT_SET], limits=LIMITS).decode(trait_log("\x00", raw))
        assert event is not None
        assert (event.args["key"], event.args["value"]) == ("\ufffd", "calm\ufffdplayful")
        assert event.truncated == {
            "key": {"sha256": hashlib.sha256(b"\x00").hexdigest(), "bytes": 1},
            "value": {"sha256": hashlib.sha256(raw.encode()).hexdigest(), "bytes": len(raw)},
        }

    def test_cut_on_a_character_boundary(self) -> None:
        text = "é" * 3000  # 2 bytes each
        event = EventDecoder.from_abi([TRAIT_SET], limits=ValueLimits(max_value_bytes=4097)).decode(
            trait_log("k", text)
        )
        assert event is not None
        assert event.args["value"] == "é" * 2048  # 4096 bytes: never half a character
        assert event.truncated is not None
        assert event.truncated["value"]["bytes"] == 6000

    def test_digest_is_of_the_bytes_on_chain_even_when_not_utf8(self) -> None:
        raw = b"\xff\xfe" * 5000
        event = EventDecoder.from_abi([TRAIT_SET], limits=LIMITS).decode(trait_log("k", raw))
        assert event is not None
        assert event.truncated == {
            "value": {"sha256": hashlib.sha256(raw).hexdigest(), "bytes": 10_000}
        }

    def test_short_values_and_no_limits_are_untouched(self) -> None:
        short = EventDecoder.from_abi([TRAIT_SET], limits=LIMITS).decode(trait_log("k", "calm"))
        assert short is not None
        assert (short.args["value"], short.truncated) == ("calm", None)
        unlimited = EventDecoder.from_abi([TRAIT_SET]).decode(trait_log("k", HOSTILE_300KB))
        assert unlimited is not None
        assert (unlimited.args["value"], unlimited.truncated) == (HOSTILE_300KB, None)


class TestBytesAndArrays:
    def test_bytes_are_cut_by_raw_length(self) -> None:
        blob = bytes(range(256)) * 40
        event = decode(event_abi("Blob", ("data", "bytes", False)), ["bytes"], [blob])
        assert event.args["data"] == "0x" + blob[:4096].hex()
        assert event.truncated == {
            "data": {"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}
        }

    def test_an_array_keeps_its_first_items_and_the_digest_of_all(self) -> None:
        ids = list(range(2000))
        event = decode(event_abi("Many", ("ids", "uint256[]", False)), ["uint256[]"], [ids])
        assert event.args["ids"] == ids[:1024]
        canonical = orjson.dumps([str(i) for i in ids])  # the message's JSON form of the array
        assert event.truncated == {
            "ids": {"sha256": hashlib.sha256(canonical).hexdigest(), "items": 2000}
        }

    def test_cuts_inside_an_array_are_recorded_once_by_the_array(self) -> None:
        names = ["x" * 5000, "short", "y" * 5000]
        event = decode(event_abi("Names", ("names", "string[]", False)), ["string[]"], [names])
        assert [len(n) for n in event.args["names"]] == [4096, 5, 4096]
        canonical = orjson.dumps(names)
        assert event.truncated == {
            "names": {"sha256": hashlib.sha256(canonical).hexdigest(), "items": 3}
        }

    def test_tuple_fields_have_dotted_paths(self) -> None:
        abi = {
            "type": "event",
            "name": "Order",
            "inputs": [
                {
                    "name": "order",
                    "type": "tuple",
                    "indexed": False,
                    "components": [
                        {"name": "id", "type": "uint256"},
                        {"name": "note", "type": "string"},
                    ],
                }
            ],
        }
        event = decode(abi, ["(uint256,string)"], [(5, "n" * 9000)])
        assert event.args["order"]["id"] == 5
        assert len(event.args["order"]["note"]) == 4096
        assert list(event.truncated) == ["order.note"]

    def test_the_event_budget_bounds_many_values_and_nested_arrays(self) -> None:
        strings = decode(
            event_abi("S", ("s", "string[]", False)), ["string[]"], [["z" * 4096] * 100]
        )
        assert sum(len(s) for s in strings.args["s"]) == EVENT_VALUE_BYTES
        nested = decode(
            event_abi("N", ("m", "uint256[][]", False)), ["uint256[][]"], [[[1] * 300] * 10]
        )
        assert sum(len(row) for row in nested.args["m"]) + len(nested.args["m"]) <= 1024
        assert nested.truncated["m"]["items"] == 10


class TestMessages:
    """The cut event reaches Kafka valid against its schema and well under the 1 MiB cap."""

    @pytest.fixture
    def encoder(self, tmp_path: Path) -> ChunkEncoder:
        abi = tmp_path / "abi.json"
        abi.write_bytes(orjson.dumps([TRAIT_SET, WORST]))
        address = "0x" + "ab" * 20
        settings = ContractSettings(name="c", network="local", address=address, abi=abi)
        decoder = EventDecoder.from_abi([TRAIT_SET, WORST], limits=LIMITS)
        publisher = EventPublisher(chain_id=31337, network="local", topic="t")
        return ChunkEncoder({address: Contract(settings, decoder)}, publisher)

    def test_hostile_set_trait_becomes_a_small_valid_message(self, encoder: ChunkEncoder) -> None:
        out = encoder.encode([trait_log("mood", HOSTILE_300KB), trait_log("mood", "calm", 3, 8)])
        (_, hostile, _), (_, honest, _) = out.messages
        body = orjson.loads(hostile)
        validate_message(body)
        assert len(hostile) < 30_000  # 4096 bytes of control characters, escaped
        assert body["truncated"]["value"]["bytes"] == len(HOSTILE_300KB.encode())
        assert out.cuts == {"TraitSet": 1}
        # An event with nothing cut is byte for byte what it always was: no 'truncated'.
        assert b"truncated" not in honest
        event = EventDecoder.from_abi([TRAIT_SET]).decode(trait_log("mood", "calm", 3, 8))
        assert event is not None
        assert honest == encoder.publisher.encoded(event)[1]

    def test_the_largest_event_fits_the_kafka_cap(self, encoder: ChunkEncoder) -> None:
        control = "\x01" * 300_000
        log = make_log(
            [topic_of(WORST), "0x" + "ff" * 32],
            encode(
                ["string", "string", "string[]", "uint256[]"],
                [control, control, [control[:5000]] * 1100, [2**256 - 1] * 1100],
            ),
        )
        out = encoder.encode([log])
        (_, value, _) = out.messages[0]
        validate_message(orjson.loads(value))
        # 64 KiB of content at 6 bytes each (\u0001), 1024 items, envelope and records.
        assert len(value) < 6 * EVENT_VALUE_BYTES + 200_000 < KAFKA_CAP
        assert out.cuts == {"Worst": 4}
