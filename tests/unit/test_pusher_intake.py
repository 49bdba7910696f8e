"""The pusher's intake on typed messages: the decode step accepts only metadata updates,
``update_record`` / ``Intake`` turn them into outbox rows of the configured contracts only,
refused updates are counted and logged, and ``trusted_bindings`` finds the collections each
push target may announce. (The trust check itself is SQL: tests/integration/test_pusher.py.)"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import orjson
import pytest
import structlog

from dnft import metrics
from dnft.collection import BoundCollection, collection_from_mapping
from dnft.errors import ConfigError
from dnft.kafka import ConsumedMessage
from dnft.messages import MetadataUpdate
from dnft.stream import Decoded, InvalidMessage, message_decoder
from publisher.pusher import Intake, Outbox, PushTarget, UpdateRecord, update_record
from publisher.pusher.intake import trusted_bindings
from publisher.pusher.rows import Recorded, RefusedReason
from schemas import METADATA_UPDATE_V1
from tests.support.messages import event
from tests.support.rules import FED, collection_rules

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
    """Records an update when ``versions`` (token, version) -> CID holds it and no newer
    version of the token is recorded (unless it is this one), as the SQL does."""

    def __init__(self, versions: Mapping[tuple[int, int], str] | None = None) -> None:
        self.recorded: list[UpdateRecord] = []
        self.versions = versions
        self.bindings: list[Mapping[tuple[int, str], Sequence[str]]] = []

    async def record_updates(
        self, updates: Sequence[UpdateRecord], bindings: Mapping[tuple[int, str], Sequence[str]]
    ) -> Recorded:
        self.bindings.append(bindings)
        refused: list[tuple[UpdateRecord, RefusedReason]] = []
        new = []
        for u in updates:
            cid = None if self.versions is None else self.versions.get((u.token_id, u.version))
            if self.versions is not None and cid is None:
                refused.append((u, "unknown_version"))
            elif self.versions is not None and cid != u.metadata_cid:
                refused.append((u, "cid_mismatch"))
            elif u not in self.recorded and any(
                r.token_id == u.token_id and r.version > u.version for r in self.recorded
            ):
                refused.append((u, "superseded"))
            elif u not in self.recorded and u not in new:
                new.append(u)
        self.recorded.extend(new)
        return Recorded(len(new), refused)


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
        intake = Intake(cast(Outbox, outbox), {(31337, CONTRACT): ("test",)})
        bodies = [update(1, 1), update(2, 1, contract=OTHER), update(1, 2)]
        batch = [Decoded(consumed(b, i), decode(consumed(b, i))) for i, b in enumerate(bodies)]
        await intake.handle(batch)
        await intake.handle(batch)  # a redelivered batch records nothing new
        assert [(r.token_id, r.version) for r in outbox.recorded] == [(1, 1), (1, 2)]
        assert (intake.seen, intake.recorded, intake.skipped) == (6, 2, 2)
        assert outbox.bindings[0] == {(31337, CONTRACT): ("test",)}

    async def test_refused_updates_counted_and_logged(self) -> None:
        outbox = FakeOutbox({(1, 1): "bafkreiabc", (2, 1): "bother"})
        intake = Intake(cast(Outbox, outbox), {(31337, CONTRACT): ("test",)})
        bodies = [update(1, 1), update(2, 1), update(3, 1)]
        batch = [Decoded(consumed(b, i), decode(consumed(b, i))) for i, b in enumerate(bodies)]

        def count(reason: str) -> float:
            sample = metrics.registry.get_sample_value(
                "dnft_pusher_updates_refused_total", {"reason": reason}
            )
            return sample or 0.0

        before = (count("unknown_version"), count("cid_mismatch"))
        with structlog.testing.capture_logs() as logs:
            await intake.handle(batch)
        assert [(r.token_id, r.version) for r in outbox.recorded] == [(1, 1)]
        assert (intake.recorded, intake.refused) == (1, 2)
        assert (count("unknown_version") - before[0], count("cid_mismatch") - before[1]) == (1, 1)
        warned = [(e["token_id"], e["reason"]) for e in logs if e["log_level"] == "warning"]
        assert warned == [("2", "cid_mismatch"), ("3", "unknown_version")]

    async def test_superseded_version_refused_as_a_rollback(self) -> None:
        outbox = FakeOutbox({(1, 1): "bafkreiabc", (1, 2): "bafkreiabc"})
        intake = Intake(cast(Outbox, outbox), {(31337, CONTRACT): ("test",)})

        def batch(*bodies: dict[str, Any]) -> list[Decoded[MetadataUpdate]]:
            return [Decoded(consumed(b, i), decode(consumed(b, i))) for i, b in enumerate(bodies)]

        def superseded() -> float:
            sample = metrics.registry.get_sample_value(
                "dnft_pusher_updates_refused_total", {"reason": "superseded"}
            )
            return sample or 0.0

        await intake.handle(batch(update(1, 2)))
        before = superseded()
        with structlog.testing.capture_logs() as logs:
            await intake.handle(batch(update(1, 1), update(1, 2)))  # old one, then a replay
        assert [(r.token_id, r.version) for r in outbox.recorded] == [(1, 2)]
        assert (intake.recorded, intake.refused) == (1, 1)
        assert superseded() == before + 1
        (warned,) = [e for e in logs if e["log_level"] == "warning"]
        assert (warned["token_id"], warned["version"], warned["reason"]) == ("1", 1, "superseded")
        assert warned["event"] == (
            "metadata update refused: a newer version of the token is already recorded (a rollback)"
        )


def bound(name: str, chain_id: int, contract: str) -> BoundCollection:
    rules = collection_rules(FED, salt="s", levels={0: "egg"}, prompt="p") | {"name": name}
    return BoundCollection(collection_from_mapping(rules), chain_id, contract)


class TestTrustedBindings:
    """Each push target trusts the collections bound to its own chain and contract only."""

    def test_collections_of_each_target(self) -> None:
        targets = [
            (31337, PushTarget("a", CONTRACT, "erc4906", "ipfs://{cid}")),
            (1, PushTarget("b", CONTRACT, "erc4906", "ipfs://{cid}")),
        ]
        collections = [
            bound("zeta", 31337, CONTRACT),
            bound("alpha", 31337, CONTRACT),
            bound("other-chain", 5, CONTRACT),
            bound("other-contract", 1, OTHER),
            bound("mainnet", 1, CONTRACT),
        ]
        assert trusted_bindings(targets, collections) == {
            (31337, CONTRACT): ("alpha", "zeta"),
            (1, CONTRACT): ("mainnet",),
        }

    def test_target_without_collection_is_a_config_error(self) -> None:
        targets = [(31337, PushTarget("lonely", CONTRACT, "erc4906", "ipfs://{cid}"))]
        with pytest.raises(ConfigError, match=r"pusher\.collections: contract 'lonely'"):
            trusted_bindings(targets, [bound("x", 31337, OTHER)])
