"""Feed bodies to exact numbers and times: paths, decimals, timestamps, canonical text."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from dnft.jsonpath import PathNotFoundError, parse_path, resolve
from oracle_feeds.parse import format_decimal, iso_utc, parse_json, parse_timestamp, to_decimal
from oracle_feeds.validate import Rejected

DOC: dict[str, Any] = {
    "data": {"rates": [{"usd": "3012.55"}, {"usd": 2}], "a/b": 1, "m~n": 2, "7": "seven"},
    "list": [10, 20],
}


def reason_of(fn: Any, *args: Any) -> str:
    with pytest.raises(Rejected) as info:
        fn(*args)
    return info.value.reason


class TestPaths:
    """Pointer and dotted paths compile to the same steps and find the same values."""

    @pytest.mark.parametrize(
        ("path", "expected"),
        [
            ("/data/rates/0/usd", "3012.55"),
            ("data.rates[0].usd", "3012.55"),
            ("$.data.rates[1].usd", 2),
            ("data.rates.1.usd", 2),
            ("/data/a~1b", 1),
            ("/data/m~0n", 2),
            ("data.7", "seven"),
            ("list[1]", 20),
        ],
    )
    def test_found(self, path: str, expected: Any) -> None:
        assert resolve(DOC, parse_path(path)) == expected

    @pytest.mark.parametrize("path", ["", "a..b", "a.[0]", "a[x]", "a]"])
    def test_malformed_paths_are_refused(self, path: str) -> None:
        with pytest.raises(ValueError, match="path"):
            parse_path(path)

    @pytest.mark.parametrize(
        ("path", "message"),
        [
            ("data.price", "no key 'price' at /data"),
            ("list[5]", "index 5 past the end"),
            ("list.x", "key 'x' asked of a list"),
            ("list.01", "key '01' asked of a list"),
            ("data.rates[0].usd.x", "str at /data/rates/0/usd has no 'x'"),
            ("data[0]", "no key 0 at /data"),
        ],
    )
    def test_missing_values_say_where(self, path: str, message: str) -> None:
        with pytest.raises(PathNotFoundError, match=message):
            resolve(DOC, parse_path(path))


class TestJson:
    """JSON numbers never pass through float; bad bodies are 'malformed'."""

    def test_numbers_are_exact_decimals(self) -> None:
        doc = parse_json(b'{"p": 0.1, "q": 12345678901234567890.123456789, "n": 7}')
        assert doc == {
            "p": Decimal("0.1"),
            "q": Decimal("12345678901234567890.123456789"),
            "n": Decimal(7),
        }

    def test_nan_literal_parses_to_a_non_finite_decimal(self) -> None:
        assert reason_of(to_decimal, parse_json(b'{"p": NaN}')["p"]) == "not_finite"
        assert reason_of(to_decimal, parse_json(b"[-Infinity]")[0]) == "not_finite"

    @pytest.mark.parametrize(
        "body", [b'{"p": 1', b"<html><body>502 Bad Gateway</body></html>", b"\xff\xfe"]
    )
    def test_malformed(self, body: bytes) -> None:
        assert reason_of(parse_json, body) == "malformed"


class TestDepth:
    """Deep nesting is refused before the recursive parser sees it (it would crash the
    process: web3's dependencies raise the recursion limit to 100000)."""

    @pytest.fixture(autouse=True)
    def high_recursion_limit(self) -> Iterator[None]:
        old = sys.getrecursionlimit()
        sys.setrecursionlimit(100_000)
        yield
        sys.setrecursionlimit(old)

    @pytest.mark.parametrize(
        "body",
        [
            b"[" * 200_000,
            b"[" * 200_000 + b"]" * 200_000,
            b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
            b"[NaN, " + b"[" * 200_000,
            b'["]", ' + b"[" * 100_000 + b"]" * 100_000 + b"]",
        ],
    )
    def test_deep_bodies_are_refused(self, body: bytes) -> None:
        with pytest.raises(Rejected, match="nested deeper than 64") as info:
            parse_json(body)
        assert info.value.reason == "malformed"

    def test_limit(self) -> None:
        assert parse_json(b"[" * 64 + b"1" + b"]" * 64) is not None
        assert reason_of(parse_json, b"[" * 65 + b"1" + b"]" * 65) == "malformed"

    def test_brackets_inside_strings_do_not_count(self) -> None:
        text = '{"a": "' + "[[[{{{" * 1000 + '\\"]]]", "b": [1, {"c": "}"}]}'
        assert parse_json(text.encode())["b"][1]["c"] == "}"


class TestDecimal:
    """Readings become finite Decimals or are refused with the right reason."""

    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            ("3012.55", Decimal("3012.55")),
            (" -1.5 ", Decimal("-1.5")),
            ("1e3", Decimal("1e3")),
            (Decimal("0.10"), Decimal("0.10")),
            (7, Decimal(7)),
            (".5", Decimal("0.5")),
        ],
    )
    def test_numbers(self, raw: Any, expected: Decimal) -> None:
        assert to_decimal(raw) == expected

    @pytest.mark.parametrize(
        ("raw", "reason"),
        [
            ("abc", "not_numeric"),
            ("3,012.55", "not_numeric"),
            ("0x10", "not_numeric"),
            ("", "not_numeric"),
            (True, "not_numeric"),
            (None, "not_numeric"),
            ({"p": 1}, "not_numeric"),
            ([1], "not_numeric"),
            ("NaN", "not_finite"),
            ("-inf", "not_finite"),
            ("Infinity", "not_finite"),
            (Decimal("sNaN"), "not_finite"),
            ("1e999999", "out_of_bounds"),
            ("1e-60", "out_of_bounds"),
        ],
    )
    def test_refused(self, raw: Any, reason: str) -> None:
        assert reason_of(to_decimal, raw) == reason

    @pytest.mark.parametrize(
        ("value", "text"),
        [
            ("3012.550", "3012.55"),
            ("1E+3", "1000"),
            ("-0", "0"),
            ("-0.000", "0"),
            ("0.00000001", "0.00000001"),
            ("-12.5", "-12.5"),
            ("100", "100"),
        ],
    )
    def test_canonical_text(self, value: str, text: str) -> None:
        assert format_decimal(Decimal(value)) == text


class TestTimestamps:
    """Seconds, milliseconds, numeric strings and ISO 8601 all mean Unix seconds."""

    @pytest.mark.parametrize(
        "raw",
        [
            Decimal(1_700_000_000),
            Decimal(1_700_000_000_000),
            "1700000000",
            "2023-11-14T22:13:20Z",
            "2023-11-14T23:13:20+01:00",
            "2023-11-14T22:13:20",
        ],
    )
    def test_same_instant(self, raw: Any) -> None:
        assert parse_timestamp(raw) == 1_700_000_000.0

    @pytest.mark.parametrize(
        "raw", ["yesterday", True, None, Decimal(-1), Decimal("1e20"), {"t": 1}, Decimal("NaN")]
    )
    def test_bad(self, raw: Any) -> None:
        assert reason_of(parse_timestamp, raw) == "bad_timestamp"

    def test_iso_output(self) -> None:
        assert iso_utc(1_700_000_000.1234) == "2023-11-14T22:13:20.123Z"
