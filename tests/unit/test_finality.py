"""Finality as data: how final a chain event's block was when the indexer published it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from dnft.config import Confirmations, NetworkSettings
from dnft.config.pusher import PusherCollectionSettings
from dnft.errors import DecodeError
from dnft.messages import ChainEvent, at_least, decode_message, finality_of
from dnft.validation import validate_message
from indexer.publish import EventPublisher
from indexer.sync import final_label
from tests.support.messages import event


@dataclass(frozen=True)
class _Event:
    """A decoded log, as much as the publisher reads of it."""

    block_number: int
    name: str = "Fed"
    address: str = "0x" + "ab" * 20
    block_hash: str = "0x" + "cd" * 32
    tx_hash: str = "0x" + "ef" * 32
    log_index: int = 0
    args: dict[str, Any] = field(default_factory=lambda: {"tokenId": 7, "amount": 1})


def network(**confirmations: Any) -> NetworkSettings:
    return NetworkSettings(
        name="local",
        chain_id=31337,
        rpc_urls=["http://localhost:1"],
        confirmations=Confirmations(**confirmations),
    )


class TestClassify:
    @pytest.mark.parametrize(
        ("block", "final", "label", "expected"),
        [
            (10, 10, "safe", "safe"),  # the final block itself is final
            (9, 10, "finalized", "finalized"),
            (11, 10, "safe", "head"),  # one above: a reorg may still replace it
            (11, 10, "finalized", "head"),
            (5, None, "safe", "safe"),  # a backfill hands over final blocks only
        ],
    )
    def test_finality_of(self, block: int, final: int | None, label: Any, expected: str) -> None:
        assert finality_of(block, final, label) == expected

    def test_policy_label(self) -> None:
        assert final_label(network(tag="safe")) == "safe"
        assert final_label(network(tag="finalized")) == "finalized"
        assert final_label(network(depth=12)) == "finalized", "depth is dnft's own policy"

    def test_order(self) -> None:
        assert at_least("finalized", "safe")
        assert at_least("safe", "safe")
        assert not at_least("head", "safe")
        assert not at_least("safe", "finalized")
        assert at_least("head", "head")
        assert not at_least(None, "head"), "an unknown finality is never assumed"


class TestMessage:
    def publisher(self, label: Any) -> EventPublisher:
        return EventPublisher(chain_id=31337, network="local", topic="t", final_label=label)

    def test_head_and_final_events_say_so(self) -> None:
        publisher = self.publisher("safe")
        bodies = [orjson.loads(publisher.encoded(_Event(n), None, 20)[1]) for n in (19, 20, 21)]
        assert [b["finality"] for b in bodies] == ["safe", "safe", "head"]
        for body in bodies:
            validate_message(body)
        decoded = decode_message(orjson.dumps(bodies[2]))
        assert isinstance(decoded, ChainEvent)
        assert decoded.finality == "head"

    def test_backfill_events_are_final(self) -> None:
        body = orjson.loads(self.publisher("finalized").encoded(_Event(3))[1])
        assert body["finality"] == "finalized"

    def test_older_message_decodes_as_unknown(self) -> None:
        decoded = decode_message(orjson.dumps(event(5, "Fed", 7, amount="1")))
        assert isinstance(decoded, ChainEvent)
        assert decoded.finality is None

    def test_other_value_is_refused(self) -> None:
        with pytest.raises(DecodeError):
            decode_message(orjson.dumps({**event(5, "Fed", 7), "finality": "latest"}))


class TestAnnounceAfterSetting:
    def test_default_is_head(self) -> None:
        assert PusherCollectionSettings(contract="c").announce_after == "head"

    def test_unknown_value_names_the_key(self) -> None:
        with pytest.raises(ValidationError, match="announce_after"):
            PusherCollectionSettings(contract="c", announce_after="latest")
