"""dnft api's path parsers: canonical, bounded values or a 400 that says what is accepted."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from publisher.api.errors import BadRequestError
from publisher.api.validation import (
    MAX_TOKEN_ID,
    parse_address,
    parse_cursor,
    parse_limit,
    parse_sha256,
    parse_token_id,
    parse_version,
)


class TestTokenIds:
    """Token ids are uint256 in canonical decimal."""

    @pytest.mark.parametrize(
        ("raw", "value"), [("0", 0), ("1", 1), ("42", 42), (str(MAX_TOKEN_ID), MAX_TOKEN_ID)]
    )
    def test_valid(self, raw: str, value: int) -> None:
        assert parse_token_id(raw) == value

    @pytest.mark.parametrize(
        "raw",
        [
            "",
            "-1",
            "+1",
            "abc",
            "1e3",
            "1.0",
            "0x1",
            "01",
            "00",
            " 1",
            "1 ",
            "1\n",
            "１",  # full-width digit
            "١٢",  # Arabic-Indic digits: str.isdigit() says yes
            str(2**256),
            "9" * 79,
            "9" * 100_000,
            "../1",
            "1/../2",
        ],
    )
    def test_invalid(self, raw: str) -> None:
        with pytest.raises(BadRequestError) as info:
            parse_token_id(raw)
        assert len(info.value.message) < 300, "huge input is not echoed"

    @given(st.integers(min_value=0, max_value=MAX_TOKEN_ID))
    def test_round_trip(self, value: int) -> None:
        assert parse_token_id(str(value)) == value

    @given(st.text(max_size=90))
    def test_total(self, raw: str) -> None:
        try:
            value = parse_token_id(raw)
        except BadRequestError:
            return
        assert str(value) == raw, "only canonical decimal is accepted"


class TestOtherParameters:
    """Versions, image names, addresses and paging parameters are bounded too."""

    def test_versions(self) -> None:
        assert parse_version("1") == 1
        assert parse_version(str(2**31 - 1)) == 2**31 - 1
        for bad in ("0", "-1", str(2**31), "1e3", "01", "x"):
            with pytest.raises(BadRequestError):
                parse_version(bad)

    def test_sha256(self) -> None:
        good = "0123456789abcdef" * 4
        assert parse_sha256(good) == good
        for bad in (
            good.upper(),
            good[:-1],
            good + "0",
            "../" + good[3:],
            "..%2f..%2fetc%2fpasswd",
            good[:-1] + "g",
            good[:-2] + "/.",
        ):
            with pytest.raises(BadRequestError):
                parse_sha256(bad)

    def test_address(self) -> None:
        assert parse_address("0x" + "AB" * 20) == "0x" + "ab" * 20
        for bad in ("ab" * 20, "0x" + "ab" * 19, "0x" + "zz" * 20, "0X" + "ab" * 20):
            with pytest.raises(BadRequestError):
                parse_address(bad)

    def test_paging(self) -> None:
        assert parse_limit(None, default=100, maximum=500) == 100
        assert parse_limit("500", default=100, maximum=500) == 500
        assert parse_cursor(None, "after", 10) == 0
        for bad in ("0", "501", "-1"):
            with pytest.raises(BadRequestError):
                parse_limit(bad, default=100, maximum=500)
        with pytest.raises(BadRequestError):
            parse_cursor("11", "after", 10)
