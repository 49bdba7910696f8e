"""Documents checked against dnft's JSON Schemas (``schemas/``): messages and ERC-721 metadata.

Formats are checked, not just annotated: ``date-time`` (RFC 3339 with a UTC offset, and a real
date and time: what :func:`datetime.fromisoformat` then reads) and dnft's own ``uint256`` (a
decimal string below 2**256: a token id that fits both Solidity and Postgres' numeric(78)).
The checkers are our own, so no optional jsonschema extra decides whether they run.

Every failure is a :class:`~dnft.errors.DecodeError` naming the failing JSON path and why.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache
from typing import Any, Final

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from dnft.errors import DecodeError
from schemas import ERC721_METADATA_V1, MESSAGE_SCHEMAS, load_schema

UINT256_MAX: Final = 2**256 - 1
# RFC 3339 section 5.6 (fractions capped at nanoseconds; upper-case T and Z only, as
# fromisoformat reads them), checked before parsing, so that fromisoformat's other ISO 8601
# forms (a bare date, no offset, basic format) stay out.
_RFC3339: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})", re.ASCII
)
_DIGITS: Final = re.compile(r"[0-9]{1,78}", re.ASCII)

FORMATS = FormatChecker(formats=())


@FORMATS.checks("date-time")
def is_date_time(value: object) -> bool:
    """An RFC 3339 date-time with its offset, naming a real instant (no 25:00, no Feb 30)."""
    if not isinstance(value, str):
        return True  # formats apply to strings only; "type" checks the rest
    if _RFC3339.fullmatch(value) is None:
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


@FORMATS.checks("uint256")
def is_uint256(value: object) -> bool:
    """A decimal string of at most 78 digits whose value is below 2**256."""
    if not isinstance(value, str):
        return True
    return _DIGITS.fullmatch(value) is not None and int(value) <= UINT256_MAX


@cache
def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(load_schema(name), format_checker=FORMATS)


def validate_message(message: dict[str, Any]) -> str:
    """Validate against the schema the message names in its ``schema`` field; returns that name.

    Raises DecodeError with the failing JSON path and reason.
    """
    name = message.get("schema")
    if not isinstance(name, str) or name not in MESSAGE_SCHEMAS:
        raise DecodeError(f"message has no known 'schema' field (got {_preview(name)})")
    _check(name, message)
    return name


def validate_metadata(document: dict[str, Any]) -> None:
    _check(ERC721_METADATA_V1, document)


def _check(name: str, document: dict[str, Any]) -> None:
    try:
        _validator(name).validate(document)
    except ValidationError as exc:
        path = "/".join(str(p)[:80] for p in exc.absolute_path) or "(root)"
        # jsonschema's message quotes the failing value: a 1 MB string stays out of logs.
        raise DecodeError(f"{name}: {path}: {exc.message[:300]}") from None


def _preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
