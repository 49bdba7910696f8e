"""Observation messages: schema-valid, exact decimal text, provenance per source."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest

from dnft.errors import DecodeError
from dnft.validation import validate_message
from oracle_feeds.publish import ObservationPublisher, observation
from oracle_feeds.types import LastPublished, Reading, SourceObservation

T = 1_700_000_000.0


def reading(*sources: SourceObservation, value: str = "3012.550") -> Reading:
    return Reading("eth-usd", Decimal(value), T, tuple(sources))


class TestObservation:
    """Bodies carry the value as canonical decimal text and every source's hash."""

    def test_http_reading(self) -> None:
        src = SourceObservation("eth-usd", Decimal("3012.550"), "ab" * 32, T)
        body = observation(reading(src), 7, "deviation", T + 1.5)
        assert body == {
            "schema": "dnft.oracle.observation.v1",
            "feed_id": "eth-usd",
            "value": "3012.55",
            "observed_at": "2023-11-14T22:13:20.000Z",
            "published_at": "2023-11-14T22:13:21.500Z",
            "round_id": 7,
            "reason": "deviation",
            "sources": [
                {
                    "source": "eth-usd",
                    "value": "3012.55",
                    "response_sha256": "ab" * 32,
                    "observed_at": "2023-11-14T22:13:20.000Z",
                }
            ],
        }

    def test_chainlink_and_median_sources(self) -> None:
        big_round = 18446744073709551617  # phase 1, round 1: past JSON's safe integers
        chain = SourceObservation(
            "chainlink:local:0xab",
            Decimal("-5E-8"),
            "cd" * 32,
            T,
            block_number=12,
            source_round_id=big_round,
        )
        agreed = SourceObservation("a", Decimal(1), "ef" * 32, T, agreed=False)
        body = observation(reading(chain, agreed, value="1e3"), 1, "first", T)
        validate_message(body)
        assert body["value"] == "1000"
        assert body["sources"][0]["value"] == "-0.00000005"
        assert body["sources"][0]["source_round_id"] == str(big_round)
        assert body["sources"][0]["block_number"] == 12
        assert body["sources"][1]["agreed"] is False

    def test_schema_breaks_are_caught_before_sending(self) -> None:
        with pytest.raises(DecodeError, match="response_sha256"):
            observation(reading(SourceObservation("s", Decimal(1), "XYZ", T)), 1, "first", T)


class TestIntent:
    """Round ids follow the last published round; the bytes are fixed once."""

    def test_rounds(self) -> None:
        publisher = ObservationPublisher(None, None, "topic")  # type: ignore[arg-type]
        src = SourceObservation("eth-usd", Decimal(5), "00" * 32, T)
        first = publisher.intent(None, reading(src), "first", T)
        assert first.round_id == 1
        last = LastPublished(41, Decimal(1), T, T)
        intent = publisher.intent(last, reading(src), "heartbeat", T + 60)
        assert intent.round_id == 42
        assert orjson.loads(intent.message)["round_id"] == 42
        msg = publisher.message("eth-usd", intent.message)
        assert (msg.topic, msg.key, msg.value) == ("topic", b"eth-usd", intent.message)
