"""dnft.numbers: hostile number text is refused (or read exactly) before any costly conversion."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dnft.errors import DnftError
from dnft.numbers import (
    MAX_DIGITS,
    MAX_EXPONENT,
    BadNumber,
    check_decimal,
    parse_decimal,
    parse_int,
)

QUICK = settings(max_examples=300, deadline=1000)
NUMBER_TEXT = st.from_regex(
    r"[+-]?([0-9]{1,90}(\.[0-9]{0,40})?|\.[0-9]{1,40})([eE][+-]?[0-9]{1,20})?", fullmatch=True
)
HOSTILE = [
    "1e999999999",
    "-1e-999999999",
    "1e99999999999999999999999999",
    "9" * 10_000,
    "0." + "0" * 10_000 + "1",
    "1" + "0" * 100_000,
    " " * 100_000 + "1",
    "NaN",
    "sNaN",
    "-Infinity",
]


def fastest(call: Callable[[], object], runs: int = 5) -> float:
    """The quickest of ``runs`` refused calls, in seconds: a busy machine (other tests on the
    same 2 cores) slows one run, never all; a real regression is slow every time."""
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        with contextlib.suppress(BadNumber):
            call()
        times.append(time.perf_counter() - began)
    return min(times)


def outcome(text: str) -> tuple[Decimal | None, str | None]:
    """``(value, None)``, or ``(None, reason)`` when the parser refuses ``text``."""
    try:
        return parse_decimal(text), None
    except BadNumber as exc:
        return None, exc.reason


def reason_of(text: str) -> str | None:
    return outcome(text)[1]


class TestParseDecimal:
    @pytest.mark.parametrize(
        ("text", "value"),
        [
            ("12.5", Decimal("12.5")),
            (" 1 ", Decimal(1)),
            ("\t-3\n", Decimal(-3)),
            ("+7", Decimal(7)),
            (".5", Decimal("0.5")),
            ("5.", Decimal(5)),
            ("1e3", Decimal(1000)),
            ("1E-3", Decimal("0.001")),
            ("0e-999999999", Decimal(0)),
            ("-0", Decimal(0)),
            ("9" * 78, Decimal("9" * 78)),  # uint256's largest values fit
            ("1e80", Decimal("1e80")),
            ("1e-80", Decimal("1e-80")),
        ],
    )
    def test_accepted(self, text: str, value: Decimal) -> None:
        assert parse_decimal(text) == value

    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            ("1e999999999", "out_of_bounds"),
            ("-1e-999999999", "out_of_bounds"),
            ("1e81", "out_of_bounds"),
            ("1e-81", "out_of_bounds"),
            ("0.000001e-76", "out_of_bounds"),
            ("9" * 81, "out_of_bounds"),
            ("9" * 10_000, "out_of_bounds"),
            ("NaN", "not_finite"),
            ("-nan", "not_finite"),
            ("sNaN", "not_finite"),
            ("inf", "not_finite"),
            ("-Infinity", "not_finite"),
            ("1_000", "not_numeric"),
            ("١٢٣", "not_numeric"),  # Arabic-Indic digits: Decimal() would read 123
            ("１２", "not_numeric"),  # full-width digits
            ("0x10", "not_numeric"),
            ("", "not_numeric"),
            ("1e", "not_numeric"),
            ("1 000", "not_numeric"),
            ("\u00a01", "not_numeric"),  # only ASCII whitespace is ignored
        ],
    )
    def test_refused(self, text: str, reason: str) -> None:
        assert reason_of(text) == reason

    def test_is_a_dnft_value_error(self) -> None:
        with pytest.raises(DnftError):
            parse_decimal("x")
        with pytest.raises(ValueError, match="beyond 1e"):
            parse_decimal("1e999999999")

    def test_custom_bounds(self) -> None:
        assert parse_decimal("1e40", max_exponent=40) == Decimal("1e40")
        with pytest.raises(BadNumber):
            parse_decimal("1e41", max_exponent=40)
        with pytest.raises(BadNumber):
            parse_decimal("123", max_digits=2)

    @pytest.mark.parametrize("text", HOSTILE)
    def test_hostile_text_returns_fast(self, text: str) -> None:
        with pytest.raises(BadNumber):
            parse_decimal(text)
        assert fastest(lambda: parse_decimal(text)) < 0.01

    @QUICK
    @given(text=NUMBER_TEXT)
    def test_agrees_with_decimal_within_bounds(self, text: str) -> None:
        value, reason = outcome(text)
        if value is None:
            assert reason == "out_of_bounds"
            try:
                exact = Decimal(text)
            except InvalidOperation:  # beyond Decimal's own range: refused either way
                return
            digits = len(text.split("e")[0].split("E")[0].lstrip("+-").replace(".", ""))
            assert digits > MAX_DIGITS or abs(exact.adjusted()) > MAX_EXPONENT
            return
        assert value == Decimal(text)
        assert value.is_finite()
        if value:
            assert abs(value.adjusted()) <= MAX_EXPONENT
            assert len(value.as_tuple().digits) <= MAX_DIGITS

    @QUICK
    @given(text=st.text(max_size=120))
    def test_any_text_is_a_bounded_number_or_refused(self, text: str) -> None:
        value, reason = outcome(text)
        if value is None:
            assert reason in ("not_numeric", "not_finite", "out_of_bounds")
            return
        assert value.is_finite()
        assert text.strip(" \t\n\r\f\v").isascii()
        int(value)  # cheap: the magnitude is bounded


class TestCheckDecimal:
    def test_bounds(self) -> None:
        assert check_decimal(Decimal("12.5")) == Decimal("12.5")
        assert check_decimal(Decimal("0e-999999999")) == 0
        for bad in (Decimal("1e999999999"), Decimal("NaN"), Decimal("-Infinity")):
            with pytest.raises(BadNumber):
                check_decimal(bad)
        with pytest.raises(BadNumber, match="digits"):
            check_decimal(Decimal("1." + "0" * 100))


class TestParseInt:
    @pytest.mark.parametrize(("text", "value"), [("0", 0), (" 42 ", 42), ("-7", -7)])
    def test_accepted(self, text: str, value: int) -> None:
        assert parse_int(text) == value

    @pytest.mark.parametrize(
        "text", ["1e3", "1.0", "1_000", "١٢٣", "", "9" * 81, "9" * 10_000, "NaN", "0x1"]
    )
    def test_refused_fast(self, text: str) -> None:
        with pytest.raises(BadNumber):
            parse_int(text)
        assert fastest(lambda: parse_int(text)) < 0.01

    @QUICK
    @given(number=st.integers(-(10**80) + 1, 10**80 - 1))
    def test_round_trip(self, number: int) -> None:
        assert parse_int(str(number)) == number
