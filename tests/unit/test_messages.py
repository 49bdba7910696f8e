"""Kafka records decode into frozen typed messages, or are refused with a reason."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from dnft.errors import DecodeError
from dnft.messages import (
    ChainEvent,
    ChainRetraction,
    MetadataUpdate,
    OracleObservation,
    RenderJob,
    decode_message,
)
from tests.support.messages import event, metadata_update, observation, render_job, retraction


def decode(body: dict[str, Any]) -> Any:
    return decode_message(orjson.dumps(body))


class TestDecode:
    """Each schema becomes its own frozen class, with numbers and times converted once."""

    def test_chain_event(self) -> None:
        m = decode(event(5, "TraitSet", 12, key="mood", value="calm"))
        assert isinstance(m, ChainEvent)
        assert (m.token_id, m.event, m.block_number) == (12, "TraitSet", 5)
        assert m.args == {"key": "mood", "value": "calm"}

    def test_retraction(self) -> None:
        m = decode(retraction(5, 12))
        assert isinstance(m, ChainRetraction)
        assert m.token_id == 12

    def test_observation(self) -> None:
        m = decode(observation(3, "1999.25"))
        assert isinstance(m, OracleObservation)
        assert m.value == Decimal("1999.25")
        assert m.observed_at == datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
        assert m.sources[0].value == Decimal("1999.25")

    def test_render_job(self) -> None:
        m = decode(render_job())
        assert isinstance(m, RenderJob)
        assert (m.token_id, m.seed) == (7, 3)
        assert m.triggered_by == ("31337:0x01:0", "feed:eth-usd")

    def test_metadata_update(self) -> None:
        m = decode(metadata_update())
        assert isinstance(m, MetadataUpdate)
        assert (m.token_id, m.version, m.contract) == (7, 2, "0x" + "ab" * 20)

    def test_frozen(self) -> None:
        m = decode(render_job())
        with pytest.raises(dataclasses.FrozenInstanceError):
            m.seed = 4


class TestRefusals:
    """What cannot become a message is a DecodeError that says why."""

    @pytest.mark.parametrize(
        ("value", "reason"),
        [
            (b"not json", "not JSON"),
            (b"[1, 2]", "not a JSON object"),
            (b'{"schema": "dnft.other.v9"}', "no known 'schema'"),
            (orjson.dumps(render_job(seed="3")), "seed"),
            (orjson.dumps(metadata_update(created_at="yesterday")), "is not a 'date-time'"),
            (orjson.dumps(metadata_update(created_at="2026-02-30T00:00:00Z")), "date-time"),
            (orjson.dumps(metadata_update(version=2**31)), "version"),
            (orjson.dumps(metadata_update(token_id="9" * 5000)), "token_id"),
            (orjson.dumps(metadata_update(token_id=str(2**256))), "uint256"),
            (orjson.dumps(render_job(seed=2**63)), "seed"),
        ],
    )
    def test_refused(self, value: bytes, reason: str) -> None:
        with pytest.raises(DecodeError, match=reason):
            decode_message(value)

    def test_tombstone(self) -> None:
        with pytest.raises(DecodeError, match="tombstone"):
            decode_message(None)


class TestTruncated:
    """A chain event carries what the indexer cut; an event without it decodes as before."""

    def test_absent_is_none(self) -> None:
        m = decode(event(5, "TraitSet", 12, key="mood", value="calm"))
        assert isinstance(m, ChainEvent)
        assert m.truncated is None

    def test_decoded(self) -> None:
        cut = {"value": {"sha256": "e" * 64, "bytes": 300_000}}
        m = decode({**event(5, "TraitSet", 12, key="mood", value="x" * 10), "truncated": cut})
        assert isinstance(m, ChainEvent)
        assert m.truncated == cut
        assert m.args == {"key": "mood", "value": "x" * 10}

    def test_largest_token_id(self) -> None:
        m = decode(metadata_update(token_id=str(2**256 - 1)))
        assert isinstance(m, MetadataUpdate)
        assert m.token_id == 2**256 - 1
