"""ERC-1155 in the indexer: ``TransferSingle`` binds to its ``id``; ``TransferBatch`` fans out
to one message per id, each keyed by its token, with its own amount and its own event id; a
batch cut at ``max_array_items`` publishes only whole pairs, flagged. Token identity of
batches is configuration, checked against the ABI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
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

    def test_a_cut_batch_publishes_only_whole_pairs_flagged(self) -> None:
        """max_array_items counts ids and values together: 6 items keep 4 ids and 2 values,
        so only ids 0 and 1 (both with their amount) are published, each saying so."""
        encoder = ChunkEncoder.from_settings(settings(network={"max_array_items": 6}), "l2")
        messages = published(encoder, [batch_log([10, 11, 12, 13], [1, 2, 3, 4])])
        assert [(b["token_id"], b["args"]["values"]) for _, b in messages] == [
            ("10", "1"),
            ("11", "2"),
        ]
        for _, body in messages:
            assert body["truncated"]["values"]["items"] == 4
            assert set(body["truncated"]) == {"values"}

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
