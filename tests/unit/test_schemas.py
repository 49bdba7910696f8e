"""Message schemas accept the messages dnft produces and refuse malformed ones."""

from __future__ import annotations

from typing import Any

import pytest

from dnft.errors import DecodeError
from dnft.validation import validate_message, validate_metadata
from schemas import MESSAGE_SCHEMAS, load_schema
from tests.support.messages import metadata_update, render_job

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


BIGINT_MAX = 2**63 - 1
INT_MAX = 2**31 - 1
UINT256_MAX = 2**256 - 1


def observation() -> dict[str, Any]:
    return {
        "schema": "dnft.oracle.observation.v1",
        "feed_id": "eth-usd",
        "value": "1999.25",
        "observed_at": "2026-11-22T10:00:00Z",
        "published_at": "2026-11-22T10:00:01.123456789+02:00",
        "round_id": 1,
        "sources": [{"source": "a", "value": "1999.25", "response_sha256": "0" * 64}],
    }


MAKERS = {"event": chain_event, "update": metadata_update, "job": render_job, "obs": observation}


class TestBounds:
    """Integers end where the Postgres column holding them ends (bigint, integer,
    numeric(78) as uint256), strings where a column or sanity does: the bound itself passes,
    one past it is refused."""

    @pytest.mark.parametrize(
        ("kind", "key", "highest", "too_high"),
        [
            ("event", "chain_id", BIGINT_MAX, BIGINT_MAX + 1),
            ("event", "block_number", BIGINT_MAX, BIGINT_MAX + 1),
            ("event", "block_timestamp", BIGINT_MAX, BIGINT_MAX + 1),
            ("event", "log_index", INT_MAX, INT_MAX + 1),
            ("event", "token_id", str(UINT256_MAX), str(UINT256_MAX + 1)),
            ("event", "token_id", "9" * 77, "9" * 79),
            ("update", "version", INT_MAX, INT_MAX + 1),
            ("update", "token_id", str(UINT256_MAX), "9" * 5000),
            ("update", "chain_id", BIGINT_MAX, BIGINT_MAX + 1),
            ("update", "metadata_uri", "u" * 2048, "u" * 2049),
            ("update", "metadata_cid", "b" + "a" * 127, "b" + "a" * 128),
            ("update", "collection", "c" * 128, "c" * 129),
            ("job", "seed", BIGINT_MAX, BIGINT_MAX + 1),
            ("job", "token_id", str(UINT256_MAX), str(UINT256_MAX + 1)),
            ("obs", "round_id", BIGINT_MAX, BIGINT_MAX + 1),
            ("obs", "value", "1" * 128, "1" * 129),
            ("obs", "feed_id", "f" * 128, "f" * 129),
        ],
    )
    def test_bound(self, kind: str, key: str, highest: object, too_high: object) -> None:
        message = MAKERS[kind]()
        validate_message({**message, key: highest})
        with pytest.raises(DecodeError, match=key):
            validate_message({**message, key: too_high})

    def test_retraction_bounds(self) -> None:
        msg = {
            **{
                k: v
                for k, v in chain_event().items()
                if k not in ("args", "tx_hash", "log_index", "block_timestamp")
            },
            "schema": "dnft.chain.retraction.v1",
            "removed": True,
        }
        validate_message(msg)
        for key, bad in [("token_id", "1" * 79), ("block_number", BIGINT_MAX + 1)]:
            with pytest.raises(DecodeError, match=key):
                validate_message({**msg, key: bad})

    def test_sources_and_event_ids_bounded(self) -> None:
        obs = observation()
        with pytest.raises(DecodeError, match="sources"):
            validate_message({**obs, "sources": obs["sources"] * 65})
        with pytest.raises(DecodeError, match="event_id"):
            validate_message({**chain_event(), "event_id": f"{'1' * 21}:{HASH}:4"})


class TestFormats:
    """date-time is checked as RFC 3339 (with an offset, a real instant), not annotated."""

    @pytest.mark.parametrize(
        "value",
        [
            "2026-11-22T10:00:00+00:00",
            "2026-11-22T10:00:00Z",
            "2026-11-22T10:00:00.5Z",
            "2024-02-29T23:59:59.123456789-07:30",
        ],
    )
    def test_valid_date_times(self, value: str) -> None:
        validate_message({**metadata_update(), "created_at": value})

    @pytest.mark.parametrize(
        "value",
        [
            "x",
            "",
            "2026-11-22",  # a date alone
            "2026-11-22T10:00:00",  # no offset
            "2026-11-22 10:00:00+00:00",  # a space for T
            "20261122T100000Z",  # ISO 8601 basic format
            "2026-11-22t10:00:00z",  # lower case (RFC 3339 allows it; fromisoformat does not)
            "2026-02-30T10:00:00Z",  # no such day
            "2026-11-22T25:00:00Z",  # no such hour
            "2026-11-22T10:00:00.1234567890Z",  # finer than nanoseconds
        ],
    )
    def test_invalid_date_times(self, value: str) -> None:
        with pytest.raises(DecodeError, match=r"created_at: .* is not a 'date-time'"):
            validate_message({**metadata_update(), "created_at": value})

    def test_every_time_field_checked(self) -> None:
        obs = observation()
        for key in ("observed_at", "published_at"):
            with pytest.raises(DecodeError, match=key):
                validate_message({**obs, key: "soon"})
        with pytest.raises(DecodeError, match="sources/0/observed_at"):
            validate_message({**obs, "sources": [{**obs["sources"][0], "observed_at": "x"}]})
        with pytest.raises(DecodeError, match="planned_at"):
            validate_message({**render_job(), "planned_at": "2026-13-01T00:00:00Z"})

    def test_long_value_not_echoed(self) -> None:
        with pytest.raises(DecodeError) as info:
            validate_message({**metadata_update(), "token_id": "9" * 100_000})
        assert len(str(info.value)) < 500


class TestTruncated:
    """A chain event may say which of its arguments the indexer cut, and nothing else."""

    def test_truncated_accepted(self) -> None:
        cut = {
            "note": {"sha256": "c" * 64, "bytes": 300_000},
            "list": {"sha256": "d" * 64, "items": 9},
        }
        validate_message({**chain_event(), "truncated": cut})

    @pytest.mark.parametrize(
        "cut",
        [
            {"note": {"bytes": 3}},  # no sha256
            {"note": {"sha256": "C" * 64}},  # not lowercase hex
            {"note": {"sha256": "c" * 64, "bytes": -1}},
            {"note": {"sha256": "c" * 64, "extra": 1}},
            {f"a{i}": {"sha256": "c" * 64} for i in range(65)},  # too many
            {"note": "cut"},
        ],
    )
    def test_truncated_refused(self, cut: dict[str, Any]) -> None:
        with pytest.raises(DecodeError, match="truncated"):
            validate_message({**chain_event(), "truncated": cut})
