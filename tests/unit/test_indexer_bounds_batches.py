"""The decoder's bounds for a batch's fanned-out arrays (``indexer.bounds.parts_bounder``):
named by ``batches``, they are cut at ``max_batch_parts`` each and spend none of the event's
``max_array_items``, which the event's other arrays still share; a cut is recorded like any
array cut (the full array's canonical sha256 and item count)."""

from __future__ import annotations

from typing import Any

from eth_abi.abi import encode
from eth_utils.crypto import keccak

from indexer.bounds import ValueLimits
from indexer.decode import DecodedEvent, EventDecoder
from tests.support.abi import event_abi, make_log

CRAFTED = event_abi(
    "Crafted",
    ("ids", "uint256[]", False),
    ("amounts", "uint256[]", False),
    ("extras", "uint256[]", False),
)
TOPIC0 = "0x" + keccak(text="Crafted(uint256[],uint256[],uint256[])").hex()


def decode(limits: ValueLimits, batches: Any, *arrays: list[int]) -> DecodedEvent:
    decoder = EventDecoder.from_abi([CRAFTED], limits=limits, batches=batches)
    event = decoder.decode(make_log([TOPIC0], encode(["uint256[]"] * 3, list(arrays))))
    assert event is not None
    return event


BATCH = {"Crafted": ("ids", "amounts")}


def test_batch_arrays_spend_none_of_the_array_budget() -> None:
    limits = ValueLimits(max_array_items=3)
    event = decode(limits, BATCH, list(range(50)), list(range(50)), [1, 2, 3, 4])
    assert (len(event.args["ids"]), len(event.args["amounts"])) == (50, 50)
    # Each of the 50 parts repeats the other array: they share its budget, 3 // 50 -> 1.
    assert event.args["extras"] == [1]
    assert event.truncated is not None
    assert set(event.truncated) == {"extras"}


def test_parts_share_the_array_budget_of_one_event() -> None:
    """1,024 items of another array on 100 ids would be 102,400 items over the parts."""
    event = decode(ValueLimits(), BATCH, list(range(100)), [1] * 100, list(range(1024)))
    assert len(event.args["ids"]) == 100
    assert event.args["extras"] == list(range(10))  # 1024 // 100
    assert event.truncated is not None
    assert event.truncated["extras"]["items"] == 1024


def test_without_batches_every_array_shares_the_budget() -> None:
    event = decode(ValueLimits(max_array_items=3), None, [1, 2], [3, 4], [5])
    assert (event.args["ids"], event.args["amounts"], event.args["extras"]) == ([1, 2], [3], [])


def test_each_batch_array_is_cut_at_max_batch_parts_and_recorded_like_an_array_cut() -> None:
    ids, amounts = list(range(10)), [7] * 4
    event = decode(ValueLimits(max_batch_parts=5), BATCH, ids, amounts, [])
    assert (event.args["ids"], event.args["amounts"]) == (ids[:5], amounts)
    # The same record an ordinary array cut makes of the same values.
    plain = decode(ValueLimits(max_array_items=5), None, ids, amounts, [])
    assert event.truncated is not None
    assert plain.truncated is not None
    assert event.truncated == {"ids": plain.truncated["ids"]}
    assert event.truncated["ids"]["items"] == 10
