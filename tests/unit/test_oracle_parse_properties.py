"""Feed bodies from hostile sources: an exact value, or a refusal with a reason; never a crash.

web3 is imported by the oracle (it raises the recursion limit to 100000), so a nesting bomb
must be refused before Python's JSON parser recurses into it; the tests import it too.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable
from datetime import UTC
from decimal import Decimal, InvalidOperation
from typing import Any

import pytest
import web3  # noqa: F401  # raises the recursion limit, as in the running oracle
from hypothesis import given, settings
from hypothesis import strategies as st

from dnft.jsonpath import PathNotFoundError, parse_path, resolve
from oracle_feeds.parse import (
    MAX_ADJUSTED_EXPONENT,
    MAX_JSON_DEPTH,
    format_decimal,
    parse_json,
    parse_timestamp,
    to_decimal,
)
from oracle_feeds.types import Reading
from oracle_feeds.validate import REJECT_REASONS, Limits, Rejected, Validator

QUICK = settings(max_examples=200, deadline=2000)
# The message schema's pattern for values (schemas/messages/dnft.oracle.observation.v1.json).
VALUE_TEXT = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
)
JSON_DOCS = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# JSON number literals as a hostile source might write them: long digit runs, exponents far
# beyond any float or Decimal context, and the literals Python's parser accepts.
NUMBER_TEXT = st.one_of(
    st.from_regex(r"-?(0|[1-9][0-9]{0,60})(\.[0-9]{1,60})?([eE][+-]?[0-9]{1,22})?", fullmatch=True),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e-400", "0e-99999999999"]),
)


def outcome(fn: Callable[..., Any], *args: Any) -> tuple[Any, str | None]:
    """``(result, None)``, or ``(None, reason)`` when ``fn`` refuses with Rejected."""
    try:
        return fn(*args), None
    except Rejected as exc:
        return None, exc.reason


def _decimal(text: str) -> Decimal | None:
    try:
        return Decimal(text)
    except InvalidOperation:  # an exponent beyond Decimal's own range
        return None


DECIMALS = NUMBER_TEXT.map(_decimal).filter(lambda d: d is not None)
# What reaches the Validator: values to_decimal accepted, and Chainlink answers (int256 scaled
# by decimals).
READING_VALUES = DECIMALS.filter(lambda d: outcome(to_decimal, d)[1] is None) | st.builds(
    lambda answer, decimals: Decimal(answer).scaleb(-decimals),
    st.integers(-(2**255), 2**255 - 1),
    st.integers(0, 255),
)


def read_value(body: bytes, path: str = "data.price") -> Decimal:
    """What an HTTP feed does with a body: parse, find the value, make it a number."""
    return to_decimal(resolve(parse_json(body), parse_path(path)))


class TestBodies:
    """Any body parses or is refused as malformed."""

    @QUICK
    @given(body=st.binary(max_size=2000))
    def test_random_bytes(self, body: bytes) -> None:
        _, reason = outcome(parse_json, body)
        assert reason in (None, "malformed")

    @QUICK
    @given(doc=JSON_DOCS, path=st.text(max_size=20))
    def test_any_document_and_path(self, doc: Any, path: str) -> None:
        """Every JSON document and every path: a value, or a refusal naming a known reason."""
        body = json.dumps({"data": doc}).encode()
        try:
            steps = parse_path(path)
        except ValueError:
            return
        try:
            _, reason = outcome(to_decimal, resolve(parse_json(body), steps))
        except PathNotFoundError:
            return
        assert reason in (None, "not_numeric", "not_finite", "out_of_bounds")

    @pytest.mark.parametrize("depth", [0, 1, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1, 5000, 300_000])
    @pytest.mark.parametrize("opener", ["[", '{"a":', "[1,"])
    def test_nesting_bombs_are_refused_without_recursing(self, depth: int, opener: str) -> None:
        closer = {"[": "]", '{"a":': "}", "[1,": "]"}[opener]
        body = (opener * depth + "0" + closer * depth).encode()
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(100_000)  # what web3's import does in the running oracle
        try:
            document, reason = outcome(parse_json, body)
        finally:
            sys.setrecursionlimit(limit)
        if depth > MAX_JSON_DEPTH:
            assert reason == "malformed"
        else:
            assert reason is None
            assert document is not None


class TestNumbers:
    """Numbers come out exact (never through float), finite and printable, or are refused."""

    @QUICK
    @given(text=NUMBER_TEXT)
    def test_number_literals(self, text: str) -> None:
        body = b'{"data": {"price": ' + text.encode() + b"}}"
        value, reason = outcome(read_value, body)
        if reason is not None:
            assert reason in ("malformed", "not_finite", "out_of_bounds")
            return
        assert value.is_finite()
        assert value == _decimal(text)  # exact: no float rounding on the way
        printed = format_decimal(value)
        assert VALUE_TEXT.fullmatch(printed)
        assert Decimal(printed) == value
        assert len(printed) <= 2 * MAX_ADJUSTED_EXPONENT + 130  # bounded by the input

    @QUICK
    @given(text=NUMBER_TEXT, pad=st.sampled_from(["", " ", "\t", "+"]))
    def test_numeric_strings_agree_with_numbers(self, text: str, pad: str) -> None:
        """A value sent as a JSON string reads as the same number, or is refused."""
        value, reason = outcome(to_decimal, pad + text + pad.strip("+"))
        if reason is not None:
            assert reason in ("not_numeric", "not_finite", "out_of_bounds")
            return
        assert value == _decimal(text)
        assert VALUE_TEXT.fullmatch(format_decimal(value))

    @QUICK
    @given(value=JSON_DOCS)
    def test_any_json_value(self, value: Any) -> None:
        number, reason = outcome(to_decimal, value)
        if reason is not None:
            assert reason in ("not_numeric", "not_finite", "out_of_bounds")
            return
        assert number.is_finite()
        assert not isinstance(value, bool)
        assert VALUE_TEXT.fullmatch(format_decimal(number))


class TestTimestamps:
    """Timestamps are a finite Unix time or bad_timestamp, whatever the source sends."""

    @QUICK
    @given(value=JSON_DOCS | NUMBER_TEXT | DECIMALS)
    def test_any_value(self, value: Any) -> None:
        seconds, reason = outcome(parse_timestamp, value)
        if reason is not None:
            assert reason == "bad_timestamp"
            return
        assert math.isfinite(seconds)
        assert abs(seconds) < 1e12  # a plausible date

    @QUICK
    @given(moment=st.datetimes(timezones=st.just(UTC)), separator=st.sampled_from(["T", " "]))
    def test_iso_8601_round_trip(self, moment: Any, separator: str) -> None:
        assert parse_timestamp(moment.isoformat(sep=separator)) == moment.timestamp()


class TestValidator:
    """History checks never accept a value outside the bounds, and refuse only with reasons."""

    @QUICK
    @given(
        values=st.lists(READING_VALUES, min_size=1, max_size=20),
        low=st.integers(-1000, 0),
        span=st.integers(0, 5000),
        max_change=st.sampled_from([None, "0.05", "0.5", "0"]),
    )
    def test_sequences(
        self, values: list[Decimal], low: int, span: int, max_change: str | None
    ) -> None:
        limits = Limits(
            min=Decimal(low),
            max=Decimal(low + span),
            max_change=Decimal(max_change) if max_change else None,
        )
        validator = Validator(limits)
        for i, value in enumerate(values):
            reading = Reading("f", value, 1000.0 + i, ())
            _, reason = outcome(validator.check, reading, 1000.0 + i)
            if reason is not None:
                assert reason in REJECT_REASONS
                continue
            assert Decimal(low) <= value <= Decimal(low + span)
            assert validator.reference == value
