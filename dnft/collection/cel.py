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
_INDEX_FIELD: Final = re.compile(r"""\b([a-z_]+)\s*\[\s*(?:"([^"\\]*)"|'([^'\\]*)')\s*\]""")


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
    bare = code_only(source)
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
    indexed = [(m.group(1), m.group(2) or m.group(3)) for m in _INDEX_FIELD.finditer(source)]
    # A variable read other than as var.name / var["name"] (a plain literal) may read any
    # field: a computed key, or a literal whose name only CEL knows (an escape such as
    # ``args["a\\x62"]``; it is then not among the plain literals read from the source, or a
    # lookalike in a string or comment is), counts as reading the whole variable.
    whole = set()
    for var in variables:
        literal = len(re.findall(rf"\b{var}\s*\[\s*\"\"\s*\]", bare))
        plain = sum(1 for v, _ in indexed if v == var)
        dotted = len(re.findall(rf"\b{var}\s*\.\s*[A-Za-z_]", bare))
        if len(re.findall(rf"\b{var}\b", bare)) > dotted + literal or plain != literal:
            whole.add(var)
        if plain == literal:  # else some plain-looking literal is not code: trust none of them
            fields |= {f for f in indexed if f[0] == var}
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
    out: list[str] = []
    i, n = 0, len(source)
    while i < n:
        if source.startswith("//", i):
            end = source.find("\n", i)
            i = n if end < 0 else end
            out.append(" ")
            continue
        quote = source[i]
        if quote not in "'\"":
            out.append(quote)
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
        out.append('""')
        i = j + len(delimiter)
    return "".join(out)


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
