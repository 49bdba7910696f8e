"""The one bounded parser for numbers that arrive as text: chain arguments, feed bodies, traits.

``Decimal(text)`` accepts ``1e999999999`` in microseconds, but whatever comes next does not:
``int()`` of it, ``format(x, "f")`` or ``to_integral_value()`` expands a billion digits while
holding the GIL. So every limit here is checked on the text, by a regex and string lengths,
before any conversion: at most ``max_digits`` digits, an adjusted exponent (the power of ten
of the leading digit) within ``±max_exponent``, ASCII digits only. What passes converts in
time proportional to its (short) text; what fails raises :class:`BadNumber` saying why.

Deliberate choices: surrounding ASCII whitespace is ignored (``" 1 "`` is 1); underscores
(``1_000``, which Python accepts) and non-ASCII digits (``"١٢٣"``, which ``Decimal`` and
``int`` accept) are refused as not numbers; ``NaN``/``Infinity``/``sNaN`` are refused as
not finite; zero is zero whatever its exponent (``0e-999999999`` is 0) up to 12 exponent
digits. Pure; never blocks.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Final, Literal

from dnft.errors import DnftError

__all__ = [
    "MAX_DIGITS",
    "MAX_EXPONENT",
    "BadNumber",
    "check_decimal",
    "parse_decimal",
    "parse_int",
]

# uint256 has 78 digits: every on-chain integer fits, with room for a decimal point.
MAX_DIGITS: Final = 80
MAX_EXPONENT: Final = 80
# Exponent digits read at all; longer is out of bounds (or zero) without converting it.
_MAX_EXPONENT_DIGITS: Final = 12
# Characters besides digits a number's text may hold: sign, point, exponent, some padding.
_MAX_EXTRA_CHARS: Final = 32

Reason = Literal["not_numeric", "not_finite", "out_of_bounds"]

# [0-9], never \d: \d matches every Unicode digit, which Decimal() would then accept.
_NUMBER: Final = re.compile(
    r"(?P<sign>[+-]?)(?:(?P<int>[0-9]+)(?:\.(?P<frac>[0-9]*))?|\.(?P<frac_only>[0-9]+))"
    r"(?:[eE](?P<exp>[+-]?[0-9]+))?"
)
_INTEGER: Final = re.compile(r"[+-]?[0-9]+")
_NON_FINITE: Final = re.compile(r"[+-]?(?:s?nan[0-9]*|inf|infinity)", re.IGNORECASE)
_ASCII_SPACE: Final = " \t\n\r\f\v"


class BadNumber(DnftError, ValueError):
    """Text that is not a number within bounds. ``reason``: not_numeric | not_finite |
    out_of_bounds (the oracle's rejection reasons use the same words)."""

    def __init__(self, reason: Reason, message: str) -> None:
        self.reason: Reason = reason
        super().__init__(message)


def parse_decimal(
    text: str, *, max_digits: int = MAX_DIGITS, max_exponent: int = MAX_EXPONENT
) -> Decimal:
    """``text`` as an exact, finite Decimal whose digits and magnitude are bounded.

    At most ``max_digits`` digits (leading and trailing zeros count: they are text to read),
    and the adjusted exponent within ``-max_exponent..max_exponent`` (``12.5`` has 1,
    ``0.001`` has -3). Raises BadNumber before converting anything that breaks a bound.
    """
    if not isinstance(text, str):
        raise BadNumber("not_numeric", f"expected text, got {type(text).__name__}")
    # Longer text cannot pass the digit bound: refuse it before the regex reads it all.
    if len(text) > max_digits + _MAX_EXTRA_CHARS:
        raise BadNumber("out_of_bounds", f"number text of {len(text)} characters is too long")
    stripped = text.strip(_ASCII_SPACE)
    match = _NUMBER.fullmatch(stripped)
    if match is None:
        if _NON_FINITE.fullmatch(stripped):
            raise BadNumber("not_finite", f"value is {stripped!r}")
        raise BadNumber("not_numeric", f"{_short(text)!r} is not a number")
    whole = match["int"] or ""
    fraction = match["frac"] or match["frac_only"] or ""
    digits = len(whole) + len(fraction)
    if digits > max_digits:
        raise BadNumber("out_of_bounds", f"number has {digits} digits (at most {max_digits})")
    exp_text = (match["exp"] or "0").lstrip("+")
    if len(exp_text.lstrip("-").lstrip("0")) > _MAX_EXPONENT_DIGITS:
        raise BadNumber("out_of_bounds", f"exponent of {_short(stripped)!r} is absurd")
    if not (whole + fraction).strip("0"):
        return Decimal(0)  # zero, whatever (readable) exponent it was written with
    # Position of the leading significant digit, as a power of ten.
    adjusted = int(exp_text) + len(whole.lstrip("0")) - 1
    if not whole.lstrip("0"):
        adjusted = int(exp_text) - (len(fraction) - len(fraction.lstrip("0"))) - 1
    if abs(adjusted) > max_exponent:
        raise BadNumber(
            "out_of_bounds", f"{_short(stripped)!r} is beyond 1e±{max_exponent} in magnitude"
        )
    return Decimal(stripped)


def check_decimal(
    value: Decimal, *, max_digits: int = MAX_DIGITS, max_exponent: int = MAX_EXPONENT
) -> Decimal:
    """An already-parsed Decimal (a JSON number, a Postgres numeric) held to the same bounds
    as :func:`parse_decimal`; returns it (zero as plain 0). Reads only its digit tuple."""
    if not value.is_finite():
        raise BadNumber("not_finite", f"value is {value}")
    if not value:
        return Decimal(0)
    digits = len(value.as_tuple().digits)
    if digits > max_digits:
        raise BadNumber("out_of_bounds", f"number has {digits} digits (at most {max_digits})")
    if abs(value.adjusted()) > max_exponent:
        raise BadNumber("out_of_bounds", f"{value:.3e} is beyond 1e±{max_exponent} in magnitude")
    return value


def parse_int(text: str, *, max_digits: int = MAX_DIGITS) -> int:
    """``text`` as an int: ASCII digits with an optional sign, at most ``max_digits`` of
    them (no exponent, no point, no underscores). Raises BadNumber."""
    if not isinstance(text, str):
        raise BadNumber("not_numeric", f"expected text, got {type(text).__name__}")
    if len(text) > max_digits + _MAX_EXTRA_CHARS:
        raise BadNumber("out_of_bounds", f"integer text of {len(text)} characters is too long")
    stripped = text.strip(_ASCII_SPACE)
    if not _INTEGER.fullmatch(stripped):
        raise BadNumber("not_numeric", f"{_short(text)!r} is not an integer")
    digits = len(stripped.lstrip("+-"))
    if digits > max_digits:
        raise BadNumber("out_of_bounds", f"integer has {digits} digits (at most {max_digits})")
    return int(stripped)


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
