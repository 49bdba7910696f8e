"""The pusher's intake on typed messages: the decode step accepts only metadata updates, and
``update_record`` / ``Intake`` turn them into outbox rows of the configured contracts only."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

import orjson
import pytest

from dnft.kafka import ConsumedMessage
from dnft.messages import MetadataUpdate
from dnft.stream import Decoded, InvalidMessage, message_decoder
from publisher.pusher import Intake, Outbox, UpdateRecord, update_record
from schemas import METADATA_UPDATE_V1
from tests.support.messages import event

CONTRACT = "0x" + "ab" * 20
OTHER = "0x" + "cd" * 20
CREATED = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def update(token_id: int, version: int, contract: str = CONTRACT) -> dict[str, Any]:
    return {
        "schema": METADATA_UPDATE_V1,
        "collection": "test",
        "chain_id": 31337,
        "contract": contract,
        "token_id": str(token_id),
        "version": version,
        "metadata_uri": f"ipfs://meta/{token_id}/{version}",
        "metadata_sha256": "0" * 64,
        "metadata_cid": "bafkreiabc",
        "image_sha256": "1" * 64,
        "created_at": CREATED.isoformat(),
    }


def consumed(body: dict[str, Any], offset: int = 0) -> ConsumedMessage:
    return ConsumedMessage("updates", 0, offset, None, orjson.dumps(body), (), 0)


decode = message_decoder(MetadataUpdate)


class FakeOutbox:
    def __init__(self) -> None:
        self.recorded: list[UpdateRecord] = []

    async def record_updates(self, updates: Sequence[UpdateRecord]) -> int:
        new = [u for u in updates if u not in self.recorded]
        self.recorded.extend(new)
        return len(new)


class TestDecode:
    def test_update_as_outbox_row(self) -> None:
        record = update_record(decode(consumed(update(7, 3))))
        assert record == UpdateRecord(
            chain_id=31337,
            contract=CONTRACT,
            token_id=7,
            version=3,
            metadata_uri="ipfs://meta/7/3",
            metadata_cid="bafkreiabc",
            created_at=CREATED,
        )

    def test_other_kinds_and_invalid_go_to_the_dead_letter_topic(self) -> None:
        with pytest.raises(InvalidMessage, match="unexpected message ChainEvent"):
            decode(consumed(event(1, "Transfer", 1, to="0xaa")))
        with pytest.raises(InvalidMessage, match="token_id"):
            decode(consumed({**update(1, 1), "token_id": "one"}))
        with pytest.raises(InvalidMessage, match="not JSON"):
            decode(ConsumedMessage("updates", 0, 0, None, b"{", (), 0))


class TestIntake:
    async def test_records_configured_contracts_once(self) -> None:
        outbox = FakeOutbox()
        intake = Intake(cast(Outbox, outbox), {(31337, CONTRACT)})
        bodies = [update(1, 1), update(2, 1, contract=OTHER), update(1, 2)]
        batch = [Decoded(consumed(b, i), decode(consumed(b, i))) for i, b in enumerate(bodies)]
        await intake.handle(batch)
        await intake.handle(batch)  # a redelivered batch records nothing new
        assert [(r.token_id, r.version) for r in outbox.recorded] == [(1, 1), (1, 2)]
        assert (intake.seen, intake.recorded, intake.skipped) == (6, 2, 2)
