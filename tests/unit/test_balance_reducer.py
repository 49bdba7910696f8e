"""``reduce: balance``: a token's balance per holder from its transfers (ERC-1155 single and
batch parts, ERC-721), usable from CEL; ``events:`` reduces several events together; both
are checked against the contract's ABI at load, errors naming file, key, event and argument."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from dnft.collection import TokenEvent, collection_from_mapping, derive_state
from dnft.collection.abi import events_of
from dnft.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
ERC1155 = events_of(orjson.loads((ROOT / "schemas/abi/StockERC1155.json").read_bytes()))
ERC721 = events_of(orjson.loads((ROOT / "schemas/abi/StockERC721.json").read_bytes()))
ZERO = "0x" + "0" * 40
ALICE, BOB, CAROL = ("0x" + c * 40 for c in "abc")
BOTH = ["TransferSingle", "TransferBatch"]


def rules(*traits: dict[str, Any], stage: str = "supply") -> dict[str, Any]:
    return {
        "name": "items",
        "contract": "items",
        "salt": "s",
        "traits": list(traits),
        "stages": {"trait": stage, "levels": [{"min": 0, "name": "a"}, {"min": 10, "name": "b"}]},
        "prompt": "{stage}",
    }


def single(n: int, source: str, target: str, value: int) -> TokenEvent:
    args = {"operator": ALICE, "from": source, "to": target, "id": "1", "value": str(value)}
    return TokenEvent(f"e{n}", "TransferSingle", args, n, 0)


def batch_part(n: int, part: int, source: str, target: str, value: int) -> TokenEvent:
    """A TransferBatch part as the indexer publishes it: ids/values hold this token's item."""
    args = {"operator": ALICE, "from": source, "to": target, "ids": "1", "values": str(value)}
    return TokenEvent(f"e{n}:{part}", "TransferBatch", args, n, 1)


HOLDERS = {"name": "holders", "events": BOTH, "reduce": "balance"}
SUPPLY = {"name": "supply", "events": BOTH, "reduce": "balance", "output": "total"}
COUNT = {"name": "count", "events": BOTH, "reduce": "balance", "output": "count"}
HISTORY = [
    single(1, ZERO, ALICE, 10),  # mint
    batch_part(2, 0, ZERO, BOB, 5),  # batch mint
    single(3, ALICE, CAROL, 4),
    batch_part(4, 3, BOB, CAROL, 5),  # Bob sends it all: dropped
    single(5, CAROL, ZERO, 1),  # burn
]


class TestBalances:
    def test_single_and_batch_transfers_per_holder(self) -> None:
        collection = collection_from_mapping(rules(HOLDERS, SUPPLY, COUNT), events=ERC1155)
        traits = derive_state(collection, 1, HISTORY, {}).traits
        assert orjson.loads(traits["holders"]) == {ALICE: "6", CAROL: "8"}
        assert (traits["supply"], traits["count"]) == ("14", "2")

    def test_order_of_arrival_does_not_matter(self) -> None:
        collection = collection_from_mapping(rules(HOLDERS, SUPPLY), events=ERC1155)
        assert derive_state(collection, 1, HISTORY[::-1], {}) == derive_state(
            collection, 1, HISTORY, {}
        )

    def test_the_map_keeps_the_largest_holders(self) -> None:
        trait = {**HOLDERS, "max_holders": 1}
        collection = collection_from_mapping(rules(trait, SUPPLY), events=ERC1155)
        traits = derive_state(collection, 1, HISTORY, {}).traits
        assert orjson.loads(traits["holders"]) == {CAROL: "8"}
        assert traits["supply"] == "14"  # the total is exact beyond the kept map

    def test_erc721_transfers_move_one(self) -> None:
        owner = {"name": "owner", "event": "Transfer", "reduce": "balance"}
        collection = collection_from_mapping(rules(owner, stage="owner"), events=ERC721)
        events = [
            TokenEvent("a", "Transfer", {"from": ZERO, "to": ALICE, "tokenId": "3"}, 1, 0),
            TokenEvent("b", "Transfer", {"from": ALICE, "to": BOB, "tokenId": "3"}, 2, 0),
        ]
        assert orjson.loads(derive_state(collection, 3, events, {}).traits["owner"]) == {BOB: "1"}

    def test_unreadable_transfers_are_skipped(self) -> None:
        collection = collection_from_mapping(rules(HOLDERS, SUPPLY), events=ERC1155)
        events = [
            single(1, ZERO, ALICE, 10),
            single(2, ALICE, "not an address " * 20, 3),
            TokenEvent("x", "TransferSingle", {"from": ALICE, "to": BOB, "value": "-4"}, 3, 0),
            TokenEvent("y", "TransferSingle", {"from": ALICE, "to": BOB, "value": "1e999"}, 4, 0),
        ]
        traits = derive_state(collection, 1, events, {}).traits
        assert orjson.loads(traits["holders"]) == {ALICE: "10"}

    def test_cel_reads_the_holder_map(self) -> None:
        alice = f'"{ALICE}" in traits.holders ? traits.holders["{ALICE}"] : 0'
        computed = [
            {"name": "holder_count", "expr": "size(traits.holders)"},
            {"name": "alice", "expr": alice},
            {"name": "bob_holds", "expr": f'"{BOB}" in traits.holders'},
        ]
        collection = collection_from_mapping(rules(HOLDERS, SUPPLY, *computed), events=ERC1155)
        traits = derive_state(collection, 1, HISTORY, {}).traits
        assert (traits["holder_count"], traits["alice"], traits["bob_holds"]) == ("2", "6", "false")

    def test_conditions_read_a_batch_part_as_numbers(self) -> None:
        # A part's ids/values are scalars where the ABI says uint256[]: CEL and {arg, equals}
        # must compare them as the numbers they are, as for TransferSingle's value.
        big = {"name": "big", "event": "TransferBatch", "reduce": "count",
               "where": "args.values >= 5 && args.ids == 1"}  # fmt: skip
        exact = {"name": "exact", "event": "TransferBatch", "reduce": "count",
                 "where": {"arg": "values", "equals": 5}}  # fmt: skip
        collection = collection_from_mapping(rules(big, exact, stage="big"), events=ERC1155)
        events = [batch_part(1, 0, ZERO, BOB, 5), batch_part(2, 0, ZERO, BOB, 4)]
        traits = derive_state(collection, 1, events, {}).traits
        assert (traits["big"], traits["exact"]) == ("1", "1")

    def test_an_amount_arg_is_read_as_configured(self) -> None:
        trait = {**SUPPLY, "events": ["TransferSingle"], "amount_arg": "id"}
        collection = collection_from_mapping(rules(trait), events=ERC1155)
        events = [single(1, ZERO, ALICE, 10)]  # id "1": one moved, not the value 10
        assert derive_state(collection, 1, events, {}).traits["supply"] == "1"


class TestValidation:
    @pytest.mark.parametrize(
        ("trait", "key", "says"),
        [
            (
                {**HOLDERS, "events": ["TransferSingle", "Minted"]},
                "traits.[holders].events",
                "event 'Minted' is not in the ABI of items",
            ),
            (
                {**HOLDERS, "amount_arg": "amount"},
                "traits.[holders].amount_arg",
                "argument 'amount' is not an argument of event TransferSingle(",
            ),
            (
                {"name": "holders", "event": "URI", "reduce": "balance"},
                "traits.[holders].from_arg",
                "argument 'from' is not an argument of event URI(value, id)",
            ),
        ],
    )
    def test_abi_errors_name_file_key_event_and_argument(
        self, trait: dict[str, Any], key: str, says: str
    ) -> None:
        with pytest.raises(ConfigError) as raised:
            collection_from_mapping(
                rules(trait, SUPPLY), source="items.yaml", events=ERC1155, contract="items"
            )
        assert raised.value.key == f"items.yaml: {key}"
        assert says in raised.value.reason

    @pytest.mark.parametrize(
        ("trait", "says"),
        [
            ({**HOLDERS, "event": "TransferSingle"}, "set one of 'event' or 'events'"),
            ({**HOLDERS, "events": ["URI", "URI"]}, "lists an event twice"),
            ({"name": "holders", "event": "URI", "reduce": "count", "output": "total"},
             "['output'] apply to reduce: balance"),
            ({**HOLDERS, "max_holders": 0}, "greater than or equal to 1"),
        ],
    )  # fmt: skip
    def test_shape_errors(self, trait: dict[str, Any], says: str) -> None:
        with pytest.raises(ConfigError, match=r"items\.yaml: traits") as raised:
            collection_from_mapping(rules(trait, SUPPLY), source="items.yaml", events=ERC1155)
        assert says in raised.value.reason

    def test_read_events_include_every_listed_event(self) -> None:
        collection = collection_from_mapping(rules(HOLDERS, SUPPLY), events=ERC1155)
        assert collection.read_events == frozenset(BOTH)


def test_parts_of_one_batch_keep_the_batch_order() -> None:
    """The same id twice in one batch (ERC-1155 allows it): the later item is the last."""
    last = {"name": "last_to", "event": "TransferBatch", "reduce": "last", "arg": "to"}
    collection = collection_from_mapping(rules(last, stage="last_to"), events=ERC1155)
    parts = [
        TokenEvent(f"1:0x{'aa' * 32}:4:{i}", "TransferBatch", {"to": to, "values": "1"}, 9, 4)
        for i, to in ((2, CAROL), (10, BOB))
    ]
    for order in (parts, parts[::-1]):
        assert derive_state(collection, 1, order, {}).traits["last_to"] == BOB
