"""Turning raw responses into exact numbers and times; pure, no I/O.

JSON numbers are parsed straight into ``decimal.Decimal`` (never through ``float``), so a
price such as ``3012.55`` stays exactly that. Failures raise ``Rejected`` with the reason
that becomes the ``outcome`` label of ``dnft_oracle_observations_total``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal, DecimalException
from typing import Any, Final

from dnft.numbers import BadNumber, check_decimal, parse_decimal
from oracle_feeds.validate import Rejected

# Values must print as plain decimals in messages ("^-?[0-9]+(\.[0-9]+)?$"); a magnitude
# beyond this is no real price or measurement and would print as thousands of digits.
MAX_ADJUSTED_EXPONENT: Final = 40

# Python's JSON parser recurses once per nesting level, in C, and web3's dependencies raise
# the recursion limit to 100000 at import: a deeply nested body (a few hundred KB of "[")
# would overflow the C stack and kill the process. No feed document needs more than this.
MAX_JSON_DEPTH: Final = 64
_JSON_STRING: Final = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET: Final = re.compile(r"[^\[\]{}]+")

# Unix times above this are taken as milliseconds (1e11 s is the year 5138; 1e11 ms is 1973).
_MILLIS_ABOVE: Final = Decimal(10) ** 11

# Text that looks like a number (read by dnft.numbers) rather than an ISO 8601 date.
_NUMERIC_TEXT: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def parse_json(body: bytes) -> Any:
    """Decode a JSON body with every number as a ``Decimal``; raises Rejected('malformed').

    ``NaN``/``Infinity`` literals (which Python's parser accepts) decode to non-finite
    Decimals, so the value check names them ``not_finite`` rather than ``malformed``.
    Nesting deeper than :data:`MAX_JSON_DEPTH` is refused before parsing.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected("malformed", "body is not UTF-8") from None
    _check_depth(text)
    try:
        return json.loads(text, parse_float=Decimal, parse_int=Decimal, parse_constant=Decimal)
    except json.JSONDecodeError as exc:
        raise Rejected(
            "malformed", f"body is not JSON ({exc.msg} at char {exc.pos}): {_snippet(body)}"
        ) from None
    except DecimalException:  # an exponent beyond Decimal's own range: 0e-99999999999999999999
        raise Rejected("malformed", "body holds a number beyond any range") from None
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise Rejected("malformed", "JSON nested too deeply") from None


def _check_depth(text: str) -> None:
    """Refuse documents nested deeper than MAX_JSON_DEPTH without recursing.

    Strings are cut out, brackets kept, and innermost pairs removed one level per round: a
    document within the limit vanishes; deeper or unbalanced nesting leaves a residue.
    """
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    brackets = brackets.replace("{", "[").replace("}", "]")
    for _ in range(MAX_JSON_DEPTH):
        if not brackets:
            return
        brackets = brackets.replace("[]", "")
    if brackets:
        raise Rejected(
            "malformed", f"JSON nested deeper than {MAX_JSON_DEPTH} levels (or unbalanced)"
        )


def to_decimal(value: Any) -> Decimal:
    """A reading's value as a finite Decimal; raises Rejected (not_numeric | not_finite |
    out_of_bounds for an absurd magnitude or too many digits).

    Text and JSON numbers go through the shared bounded parser (:mod:`dnft.numbers`), with
    the oracle's tighter magnitude bound :data:`MAX_ADJUSTED_EXPONENT`."""
    if isinstance(value, bool):
        raise Rejected("not_numeric", f"value is a boolean ({value})")
    try:
        if isinstance(value, str):
            return parse_decimal(value, max_exponent=MAX_ADJUSTED_EXPONENT)
        if isinstance(value, int):
            # An int from code or Chainlink's int256: its digits are bounded by its type.
            return check_decimal(Decimal(value), max_exponent=MAX_ADJUSTED_EXPONENT)
        if isinstance(value, Decimal):
            return check_decimal(value, max_exponent=MAX_ADJUSTED_EXPONENT)
        if isinstance(value, float):
            # Only reached for values built in code, never for JSON (parsed as Decimal).
            return parse_decimal(repr(value), max_exponent=MAX_ADJUSTED_EXPONENT)
    except BadNumber as exc:
        raise Rejected(exc.reason, f"value {_short(str(value))!r}: {exc}") from None
    raise Rejected("not_numeric", f"value is a JSON {_json_type(value)}, not a number")


def parse_timestamp(value: Any) -> float:
    """A source timestamp as Unix seconds: a number (seconds, or milliseconds above 1e11),
    a numeric string, or ISO 8601 (``Z`` or an offset; without one, UTC).

    Raises Rejected('bad_timestamp').
    """
    if isinstance(value, bool) or value is None:
        raise Rejected("bad_timestamp", f"timestamp is {value!r}")
    if isinstance(value, str):
        text = value.strip()
        if _NUMERIC_TEXT.fullmatch(text):
            try:
                value = parse_decimal(text)
            except BadNumber:
                raise Rejected("bad_timestamp", f"timestamp {_short(text)!r} is absurd") from None
        else:
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                raise Rejected(
                    "bad_timestamp", f"timestamp {_short(value)!r} is not ISO 8601"
                ) from None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.timestamp()
    if isinstance(value, int | Decimal):
        number = Decimal(value)
        if not number.is_finite() or number < 0 or number > _MILLIS_ABOVE * 1000:
            raise Rejected("bad_timestamp", f"timestamp {_short(str(value))} is not a Unix time")
        if number > _MILLIS_ABOVE:
            number /= 1000
        if number > _MILLIS_ABOVE:
            raise Rejected("bad_timestamp", f"timestamp {value} is not a Unix time")
        return float(number)
    raise Rejected("bad_timestamp", f"timestamp is a JSON {_json_type(value)}")


def format_decimal(value: Decimal) -> str:
    """Canonical plain text: no exponent, no trailing zeros, no ``-0`` ("3012.5", "1000")."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("-0", ""):
        text = "0"
    return text


def iso_utc(unix_s: float) -> str:
    """RFC 3339 UTC with milliseconds: ``2026-11-22T10:00:00.123Z``."""
    moment = datetime.fromtimestamp(unix_s, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _snippet(body: bytes, limit: int = 60) -> str:
    """The start of a body for a log line (an HTML error page shows its first tag)."""
    text = body[:limit].decode("utf-8", "replace")
    return repr(text + ("..." if len(body) > limit else ""))
