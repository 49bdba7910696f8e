"""Message schemas accept the messages dnft produces and refuse malformed ones."""

from __future__ import annotations

from typing import Any

import pytest

from dnft.errors import DecodeError
from dnft.validation import validate_message, validate_metadata
from schemas import MESSAGE_SCHEMAS, load_schema

HASH = "0x" + "ab" * 32


def chain_event() -> dict[str, Any]:
    return {
        "schema": "dnft.chain.event.v1",
        "event_id": f"31337:{HASH}:4",
        "chain_id": 31337,
        "network": "local",
        "contract": "0x" + "12" * 20,
        "event": "Transfer",
        "args": {"from": "0x" + "00" * 20, "to": "0x" + "34" * 20, "tokenId": "7"},
        "token_id": "7",
        "block_number": 10,
        "block_hash": HASH,
        "block_timestamp": 1_700_000_000,
        "tx_hash": HASH,
        "log_index": 4,
        "removed": False,
    }


class TestMessageSchemas:
    """Each versioned message kind has a schema whose $id is its name."""

    @pytest.mark.parametrize("name", MESSAGE_SCHEMAS)
    def test_schema_ids_match_names(self, name: str) -> None:
        assert load_schema(name)["$id"] == name

    def test_valid_chain_event(self) -> None:
        assert validate_message(chain_event()) == "dnft.chain.event.v1"

    def test_retraction_must_say_removed(self) -> None:
        msg = {
            k: v
            for k, v in chain_event().items()
            if k not in ("args", "tx_hash", "log_index", "block_timestamp")
        }
        msg["schema"] = "dnft.chain.retraction.v1"
        msg["removed"] = True
        validate_message(msg)
        msg["removed"] = False
        with pytest.raises(DecodeError, match="removed"):
            validate_message(msg)

    def test_bad_event_id_names_the_field(self) -> None:
        msg = chain_event()
        msg["event_id"] = "not-an-id"
        with pytest.raises(DecodeError, match="event_id"):
            validate_message(msg)

    def test_unknown_schema_refused(self) -> None:
        with pytest.raises(DecodeError, match="no known 'schema'"):
            validate_message({"schema": "dnft.other.v9"})

    def test_observation_value_is_decimal_string(self) -> None:
        msg = {
            "schema": "dnft.oracle.observation.v1",
            "feed_id": "eth-usd",
            "value": "3012.55",
            "observed_at": "2026-11-22T10:00:00Z",
            "published_at": "2026-11-22T10:00:01Z",
            "round_id": 1,
            "sources": [{"source": "a", "value": "3012.55", "response_sha256": "0" * 64}],
        }
        validate_message(msg)
        msg["value"] = "NaN"
        with pytest.raises(DecodeError, match="value"):
            validate_message(msg)


class TestMetadataSchema:
    """The ERC-721 metadata schema requires a provenance block."""

    def test_missing_provenance(self) -> None:
        with pytest.raises(DecodeError, match="provenance"):
            validate_metadata(
                {"name": "x", "description": "", "image": "ipfs://b", "attributes": []}
            )
