"""ERC-1155 in the indexer: ``TransferSingle`` binds to its ``id``; ``TransferBatch`` fans out
to one message per id, each keyed by its token, with its own amount and its own event id. The
fan-out comes before the value bounds: ``ids``/``values`` spend none of ``max_array_items``
(600 or 1024 ids are all published), a batch over ``max_batch_parts`` publishes the pairs up to
it, flagged, counted and logged. Token identity of batches is configuration, checked against
the ABI."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog
from eth_abi.abi import encode
from eth_utils.crypto import keccak

from dnft.config import TokenSource, settings_from_mapping
from dnft.errors import ConfigError
from dnft.validation import validate_message
from indexer import part_of
from indexer.encode import ChunkEncoder
from tests.support.abi import event_abi, make_log

STOCK_1155 = Path(__file__).resolve().parents[2] / "schemas" / "abi" / "StockERC1155.json"
ADDRESS = "0x" + "ab" * 20
OPERATOR, ALICE, BOB = ("0x" + c * 40 for c in "123")
ZERO = "0x" + "0" * 40
BATCH_SIG = "TransferBatch(address,address,address,uint256[],uint256[])"
SINGLE_SIG = "TransferSingle(address,address,address,uint256,uint256)"


def settings(abi: Path = STOCK_1155, **contract: Any) -> Any:
    network = {"name": "l2", "chain_id": 10, "rpc_urls": ["http://127.0.0.1:1"]}
    network.update(contract.pop("network", {}))
    return settings_from_mapping(
        {
            "networks": [network],
            "contracts": [
                {"name": "items", "network": "l2", "address": ADDRESS, "abi": str(abi), **contract}
            ],
            "kafka": {"bootstrap_servers": ["127.0.0.1:9092"]},
            "postgres": {"dsn": "postgresql://x@127.0.0.1/x"},
        },
        {},
    )


def _topic(value: str | int) -> str:
    word = int(value, 16) if isinstance(value, str) else value
    return "0x" + word.to_bytes(32, "big").hex()


def batch_log(ids: list[int], values: list[int], log_index: int = 7) -> Any:
    topics = ["0x" + keccak(text=BATCH_SIG).hex(), _topic(OPERATOR), _topic(ZERO), _topic(ALICE)]
    data = encode(["uint256[]", "uint256[]"], [ids, values])
    return make_log(topics, data, address=ADDRESS, logIndex=hex(log_index))


def single_log(token: int, value: int, log_index: int = 8) -> Any:
    topics = ["0x" + keccak(text=SINGLE_SIG).hex(), _topic(OPERATOR), _topic(ALICE), _topic(BOB)]
    data = encode(["uint256", "uint256"], [token, value])
    return make_log(topics, data, address=ADDRESS, logIndex=hex(log_index))


def published(encoder: ChunkEncoder, logs: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    """(key, body) of each message, each body checked against its schema."""
    out = []
    for key, value, eid in encoder.encode(logs).messages:
        body = orjson.loads(value)
        validate_message(body)
        assert body["event_id"] == eid.decode()
        out.append((key.decode(), body))
    return out


class TestFanOut:
    def test_a_batch_is_one_message_per_id_with_its_amount(self) -> None:
        encoder = ChunkEncoder.from_settings(settings(), "l2")
        messages = published(encoder, [batch_log([5, 9, 12], [1, 20, 300])])
        assert [key for key, _ in messages] == [f"10:{ADDRESS}:{i}" for i in (5, 9, 12)]
        assert [(b["token_id"], b["args"]["ids"], b["args"]["values"]) for _, b in messages] == [
            ("5", "5", "1"),
            ("9", "9", "20"),
            ("12", "12", "300"),
        ]
        base = f"10:0x{'11' * 32}:7"
        assert [b["event_id"] for _, b in messages] == [f"{base}:{i}" for i in range(3)]
        assert [part_of(b["event_id"]) for _, b in messages] == [0, 1, 2]
        # The rest of the batch's arguments travel with every part; nothing was cut.
        assert {(b["args"]["operator"], b["args"]["to"]) for _, b in messages} == {
            (OPERATOR, ALICE)
        }
        assert all("truncated" not in b for _, b in messages)

    def test_a_single_transfer_is_one_message_of_its_id(self) -> None:
        encoder = ChunkEncoder.from_settings(settings(), "l2")
        ((key, body),) = published(encoder, [single_log(9, 4)])
        assert (key, body["token_id"], body["args"]["value"]) == (f"10:{ADDRESS}:9", "9", "4")
        assert part_of(body["event_id"]) is None  # a whole log keeps the three-field id

    def test_kept_events_match_messages_one_to_one(self) -> None:
        """The indexer's runtime pairs each kept event with its message (retractions)."""
        encoder = ChunkEncoder.from_settings(settings(), "l2")
        encoded = encoder.encode([batch_log([1, 2], [3, 4]), single_log(1, 1)], keep_events=True)
        assert len(encoded.events) == len(encoded.messages) == 3
        retractions = [encoder.publisher.retraction_body(e) for e in encoded.events]
        for retraction, (key, _, eid) in zip(retractions, encoded.messages, strict=True):
            validate_message(retraction)
            assert retraction["event_id"] == eid.decode()
            assert encoder.publisher.retraction(retraction).key == key
        assert encoded.counts == {"items": 3}

    def test_an_empty_batch_publishes_nothing(self) -> None:
        encoder = ChunkEncoder.from_settings(settings(), "l2")
        assert published(encoder, [batch_log([], [])]) == []

    @pytest.mark.parametrize("count", [600, 1024])
    @pytest.mark.parametrize("max_array_items", [1, 1024])
    def test_every_id_of_a_large_batch_is_published(self, count: int, max_array_items: int) -> None:
        """ids and values used to share the event's max_array_items (1024): 600 ids gave 424
        messages and 1024 gave none. Each part is scalars, so the array budget is not spent."""
        net = {"max_array_items": max_array_items}
        encoder = ChunkEncoder.from_settings(settings(network=net), "l2")
        ids = list(range(1, count + 1))
        encoded = encoder.encode([batch_log(ids, [i * 7 for i in ids])])
        bodies = [orjson.loads(value) for _, value, _ in encoded.messages]
        assert [(b["token_id"], b["args"]["values"]) for b in bodies] == [
            (str(i), str(i * 7)) for i in ids
        ]
        assert all("truncated" not in b for b in bodies)
        assert encoded.cuts == {}
        validate_message(bodies[-1])

    def test_a_batch_over_max_batch_parts_publishes_the_cap_flagged_counted_logged(self) -> None:
        cap = 1024
        encoder = ChunkEncoder.from_settings(settings(network={"max_batch_parts": cap}), "l2")
        ids = list(range(cap + 1))
        amounts = [i + 1 for i in ids]
        with structlog.testing.capture_logs() as logs:
            encoded = encoder.encode([batch_log(ids, amounts)])
        bodies = [orjson.loads(value) for _, value, _ in encoded.messages]
        assert [(b["token_id"], b["args"]["values"]) for b in bodies] == [
            (str(i), str(i + 1)) for i in range(cap)
        ]
        digest = {
            arg: hashlib.sha256(orjson.dumps([str(v) for v in full])).hexdigest()
            for arg, full in (("ids", ids), ("values", amounts))
        }
        for body in bodies:
            assert body["truncated"] == {
                arg: {"sha256": digest[arg], "items": cap + 1} for arg in ("ids", "values")
            }
        validate_message(bodies[0])
        assert encoded.cuts == {"TransferBatch": 2}  # dnft_indexer_values_cut_total
        (warning,) = [e for e in logs if e["log_level"] == "warning"]
        assert warning["event"].startswith("batch cut to max_batch_parts")
        assert warning["items"] == {"ids": cap + 1, "values": cap + 1}
        assert warning["published"] == cap

    def test_a_hostile_100k_batch_costs_its_decode_and_the_cap(self) -> None:
        """100,000 ids (6.4 MB of log data, which networks[].max_response_bytes bounds) decode
        once; only the default max_batch_parts parts are built."""
        encoder = ChunkEncoder.from_settings(settings(), "l2")
        ids = list(range(100_000))
        started = time.perf_counter()
        encoded = encoder.encode([batch_log(ids, ids)])
        elapsed = time.perf_counter() - started
        assert len(encoded.messages) == 10_000
        assert elapsed < 20, f"{elapsed:.1f} s"  # about 1 s here; a guard, not a benchmark

    def test_the_other_arguments_are_bounded_as_a_normal_event(self, tmp_path: Path) -> None:
        """A batch event with one more array: that array spends max_array_items, shared by the
        parts, and is cut (every part says so); the ids and amounts are not, and no batch
        warning is logged."""
        crafted = event_abi(
            "Crafted",
            ("ids", "uint256[]", False),
            ("amounts", "uint256[]", False),
            ("extras", "uint256[]", False),
        )
        abi = tmp_path / "crafted.json"
        abi.write_bytes(orjson.dumps([crafted]))
        events = {"Crafted": {"token": {"arg": "ids", "amount_arg": "amounts"}}}
        encoder = ChunkEncoder.from_settings(
            settings(abi, events=events, network={"max_array_items": 2}), "l2"
        )
        topic0 = "0x" + keccak(text="Crafted(uint256[],uint256[],uint256[])").hex()
        data = encode(["uint256[]"] * 3, [[1, 2, 3, 4, 5], [9] * 5, [7] * 5])
        log = make_log([topic0], data, address=ADDRESS)
        with structlog.testing.capture_logs() as logs:
            encoded = encoder.encode([log])
        bodies = [orjson.loads(value) for _, value, _ in encoded.messages]
        assert [b["token_id"] for b in bodies] == ["1", "2", "3", "4", "5"]
        # The five parts share the other array's budget of 2 items: at least one each.
        assert all(b["args"]["extras"] == ["7"] for b in bodies)
        assert all(set(b["truncated"]) == {"extras"} for b in bodies)
        assert encoded.cuts == {"Crafted": 1}
        assert not [e for e in logs if e["log_level"] == "warning"]

    def test_parts_share_one_events_string_budget(self, tmp_path: Path) -> None:
        """Each part repeats the batch's other arguments: a 4 KiB note on 1,000 ids must not
        become 4 MB of messages; the parts share one event's 64 KiB (at least 256 bytes
        each), and a small batch keeps its note whole."""
        noted = event_abi(
            "Noted", ("ids", "uint256[]", False), ("amounts", "uint256[]", False),
            ("note", "string", False),
        )  # fmt: skip
        abi = tmp_path / "noted.json"
        abi.write_bytes(orjson.dumps([noted]))
        events = {"Noted": {"token": {"arg": "ids", "amount_arg": "amounts"}}}
        encoder = ChunkEncoder.from_settings(settings(abi, events=events), "l2")
        topic0 = "0x" + keccak(text="Noted(uint256[],uint256[],string)").hex()
        note = "n" * 4096

        def notes(ids: int) -> list[dict[str, Any]]:
            data = encode(["uint256[]", "uint256[]", "string"], [list(range(ids)), [1] * ids, note])
            encoded = encoder.encode([make_log([topic0], data, address=ADDRESS)])
            return [orjson.loads(value) for _, value, _ in encoded.messages]

        assert all(b["args"]["note"] == note for b in notes(2))
        many = notes(1000)
        assert len(many) == 1000
        assert all(len(b["args"]["note"]) == 256 for b in many)
        assert many[0]["truncated"]["note"]["bytes"] == 4096

    @pytest.mark.parametrize("value", [0, 100_001])
    def test_max_batch_parts_is_bounded(self, value: int) -> None:
        with pytest.raises(ConfigError) as raised:
            settings(network={"max_batch_parts": value})
        assert "max_batch_parts" in str(raised.value)

    def test_arrays_of_different_lengths_pair_up_to_the_shorter(self) -> None:
        encoder = ChunkEncoder.from_settings(settings(), "l2")
        messages = published(encoder, [batch_log([1, 2, 3], [7])])
        assert [(b["token_id"], b["args"]["values"]) for _, b in messages] == [("1", "7")]


class TestTokenIdentityConfig:
    def test_stock_erc1155_defaults(self) -> None:
        contract = settings().contracts[0]
        abi = orjson.loads(STOCK_1155.read_bytes())
        sources = contract.token_args(abi)
        assert sources["TransferBatch"] == TokenSource("ids", "values", batch=True)
        assert sources["TransferSingle"] == TokenSource("id")
        assert sources["URI"] == TokenSource("id")
        assert sources["ApprovalForAll"] is None

    def test_standard_events_bind_by_position_whatever_their_names(self, tmp_path: Path) -> None:
        abi = tmp_path / "renamed.json"
        renamed = event_abi(
            "TransferBatch",
            ("op", "address", True),
            ("src", "address", True),
            ("dst", "address", True),
            ("tokens", "uint256[]", False),
            ("amounts", "uint256[]", False),
        )
        abi.write_bytes(orjson.dumps([renamed]))
        sources = settings(abi).contracts[0].token_args([renamed])
        assert sources["TransferBatch"] == TokenSource("tokens", "amounts", batch=True)

    def test_configured_batch(self) -> None:
        events = {"TransferBatch": {"token": {"arg": "ids", "amount_arg": "values"}}}
        contract = settings(events=events).contracts[0]
        sources = contract.token_args(orjson.loads(STOCK_1155.read_bytes()))
        assert sources["TransferBatch"] == TokenSource("ids", "values", batch=True)

    def test_a_batch_without_amounts_still_fans_out(self) -> None:
        events = {"TransferBatch": {"token": {"arg": "ids"}}}
        encoder = ChunkEncoder.from_settings(settings(events=events), "l2")
        messages = published(encoder, [batch_log([4, 5], [1, 1])])
        assert [b["token_id"] for _, b in messages] == ["4", "5"]

    @pytest.mark.parametrize(
        ("event", "token", "key", "says"),
        [
            (
                "TransferBatch",
                {"arg": "ids", "amount_arg": "amounts"},
                "amount_arg",
                "event TransferBatch has no argument 'amounts'",
            ),
            (
                "TransferBatch",
                {"arg": "ids", "amount_arg": "to"},
                "amount_arg",
                "'to' of TransferBatch is address, not an array of unsigned integers",
            ),
            (
                "TransferSingle",
                {"arg": "id", "amount_arg": "value"},
                "amount_arg",
                "'id' of TransferSingle is a single token id",
            ),
            (
                "TransferBatch",
                {"arg": "operator"},
                "arg",
                "'operator' of TransferBatch is address, not an unsigned integer",
            ),
        ],
    )
    def test_errors_name_the_key_event_and_argument(
        self, event: str, token: dict[str, str], key: str, says: str
    ) -> None:
        contract = settings(events={event: {"token": token}}).contracts[0]
        with pytest.raises(ConfigError) as raised:
            contract.token_args(orjson.loads(STOCK_1155.read_bytes()))
        assert raised.value.key == f"contracts[items].events.{event}.token.{key}"
        assert says in str(raised.value)

    def test_overloads_take_their_token_per_overload(self, tmp_path: Path) -> None:
        """Two overloads naming their token differently: each overload's default is checked,
        and the binding written is one every overload holds (not the first's alone)."""
        first = event_abi("Moved", ("tokenId", "uint256", True), ("id", "uint256", False))
        second = event_abi("Moved", ("id", "uint256", True))
        abi = tmp_path / "overloads.json"
        abi.write_bytes(orjson.dumps([first, second]))
        sources = settings(abi).contracts[0].token_args([first, second])
        assert sources["Moved"] == TokenSource("id")
        third = event_abi("Moved", ("who", "address", True))
        sources = settings(abi).contracts[0].token_args([first, third])
        assert sources["Moved"] is None  # no id common to both: none, unless configured
