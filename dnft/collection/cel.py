"""CEL (Common Expression Language) in collection rules: ``where:`` conditions on an event's
arguments and computed traits (``expr:``).

Expressions come from the rules file (trusted, checked at load) but run on chain data
(untrusted). They go through ``common-expression-language`` (the Rust ``cel`` crate): no
``eval``, no loops, no I/O. Cost stays linear in the expression and its inputs because the
expression's length is capped and comprehension macros (``all``, ``exists``, ``exists_one``,
``map``, ``filter``: the only constructs that iterate) are refused at load. Every runtime
failure (type mismatch, division by zero, overflow, missing key) is a :class:`CelError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final

import cel

from dnft.numbers import BadNumber, check_decimal

__all__ = [
    "INT64_MAX",
    "MAX_EXPRESSION",
    "CelError",
    "Expression",
    "code_only",
    "compile_expression",
    "evaluate",
    "from_decimal",
    "to_decimal",
]

MAX_EXPRESSION: Final = 1000
INT64_MAX: Final = 2**63 - 1
# A comprehension macro called anywhere in the code (comments and strings taken out first:
# a comment between the dot and the name, or between the name and its parenthesis, must not
# hide one).
_MACRO: Final = re.compile(r"\b(all|exists_one|exists|map|filter)\s*\(")
_PREFIX: Final = frozenset("rRbB")
_DOT_FIELD: Final = re.compile(r"\b([a-z_]+)\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)")


class CelError(Exception):
    """An expression failed at runtime (its message is cut to 200 characters)."""


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled expression and the fields it reads: (variable, field) pairs such as
    ``("args", "amount")`` for ``args.amount`` or ``args["amount"]``. ``whole``: the variables
    it also reads otherwise (``size(args)``, a computed key): those need all their fields."""

    source: str
    program: cel.Program
    fields: frozenset[tuple[str, str]]
    whole: frozenset[str]

    def needs(self, variable: str) -> frozenset[str] | None:
        """The fields of ``variable`` the expression reads, or None when it may read any."""
        if variable in self.whole:
            return None
        return frozenset(field for var, field in self.fields if var == variable)


def compile_expression(source: str, variables: frozenset[str]) -> Expression:
    """Compile ``source``, which may read only ``variables``; raises ValueError saying why."""
    if len(source) > MAX_EXPRESSION:
        raise ValueError(f"CEL expression of {len(source)} characters (at most {MAX_EXPRESSION})")
    return _compile(source, variables)


@lru_cache(maxsize=4096)
def _compile(source: str, variables: frozenset[str]) -> Expression:
    bare, literals = _lex(source)
    macro = _MACRO.search(bare)
    if macro:
        raise ValueError(
            f"CEL macro {macro.group(1)}() iterates over a list or map: not allowed in rules"
        )
    try:
        program = cel.compile(source)
    except ValueError as exc:
        raise ValueError(f"CEL syntax error: {_first_line(exc)}") from None
    unknown = sorted(set(program.variables()) - variables)
    if unknown:
        raise ValueError(
            f"CEL expression reads unknown variables {unknown} (known: {sorted(variables)})"
        )
    fields = {(m.group(1), m.group(2)) for m in _DOT_FIELD.finditer(bare)}
    # var["name"] with a plain literal reads that field; a variable read any other way (a
    # computed key, a key spelled with an escape, size(var)) may read any field. Literals are
    # matched by position in the code, so nothing inside a string or comment counts.
    whole = set()
    for var in variables:
        read = len(re.findall(rf"\b{var}\s*\.\s*[A-Za-z_]", bare))
        for m in re.finditer(rf"\b{var}\s*\[\s*(\"\")\s*\]", bare):
            name = literals.get(m.start(1))
            if name is not None:
                fields.add((var, name))
                read += 1
        if len(re.findall(rf"\b{var}\b", bare)) > read:
            whole.add(var)
    return Expression(
        source,
        program,
        frozenset(f for f in fields if f[0] in variables),
        frozenset(whole),
    )


def code_only(source: str) -> str:
    """``source`` with each string literal replaced by ``""`` and each ``//`` comment by a
    space: what is left is code, to search for macros and field reads. A small lexer rather
    than regular expressions, so that a quote inside a comment or a comment marker inside a
    string cannot shift where code starts (raw strings, ``r"..."``, have no escapes)."""
    return _lex(source)[0]


def _lex(source: str) -> tuple[str, dict[int, str | None]]:
    """``code_only(source)`` and, for each string literal, where its ``""`` starts in that
    text -> its content when plain (no prefix, no escape), else None."""
    out: list[str] = []
    literals: dict[int, str | None] = {}
    at = 0  # length of the output so far
    i, n = 0, len(source)
    while i < n:
        if source.startswith("//", i):
            end = source.find("\n", i)
            i = n if end < 0 else end
            out.append(" ")
            at += 1
            continue
        quote = source[i]
        if quote not in "'\"":
            out.append(quote)
            at += 1
            i += 1
            continue
        start = i
        while start > 0 and i - start < 2 and source[start - 1] in _PREFIX:
            start -= 1
        prefix = source[start:i]
        before = source[start - 1] if start > 0 else " "
        raw = "r" in prefix.lower() and not (before.isalnum() or before == "_")
        delimiter = quote * 3 if source.startswith(quote * 3, i) else quote
        j = i + len(delimiter)
        while j < n and not source.startswith(delimiter, j):
            if source[j] == "\\" and not raw:
                j += 1
            elif source[j] == "\n" and len(delimiter) == 1:
                break  # unterminated: the compiler refuses it
            j += 1
        content = source[i + len(delimiter) : j]
        plain = not prefix and "\\" not in content
        literals[at] = content if plain else None
        out.append('""')
        at += 2
        i = j + len(delimiter)
    return "".join(out), literals


def evaluate(expression: Expression, context: dict[str, Any]) -> Any:
    """The expression's value for ``context``; raises CelError on any runtime failure."""
    try:
        return expression.program.execute(context)
    except Exception as exc:
        raise CelError(f"{type(exc).__name__}: {str(exc)[:200]}") from None


def from_decimal(value: Decimal) -> int | float:
    """A bounded number as CEL sees it: an int when integral and within int64, else a double
    (comparisons with ints still work; CEL's ints are 64-bit, uint256 values are not)."""
    if value == value.to_integral_value() and abs(value) <= INT64_MAX:
        return int(value)
    return float(value)


def to_decimal(value: Any) -> Decimal | None:
    """A CEL result as a bounded Decimal (None for anything else, NaN and infinities)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        value = Decimal(value)
    elif isinstance(value, float):
        value = Decimal(repr(value)) if value == value and abs(value) != float("inf") else None
    if not isinstance(value, Decimal):
        return None
    try:
        return check_decimal(value)
    except BadNumber:
        return None


def _first_line(exc: Exception) -> str:
    text = str(exc)
    for prefix in ("Failed to parse expression",):
        if text.startswith(prefix):
            text = text.split("ERROR:", 1)[-1]
    return " ".join(text.split())[:300]
