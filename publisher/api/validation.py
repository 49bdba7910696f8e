"""Parse and bound every value a URL carries before it reaches Postgres or the blob store.

Each parser is total over ``str``: it returns the value or raises BadRequestError with a
message that says what is accepted. Token ids are ERC-721 uint256s written in canonical
decimal (ASCII digits, no sign, no leading zeros, below 2**256), so one token has one URL and
caches see one key. Image names are exactly 64 lower-case hex digits: no other character can
reach a file or object name. Pure functions; nothing blocks.
"""

from __future__ import annotations

import re

from publisher.api.errors import BadRequestError

MAX_TOKEN_ID = 2**256 - 1
# Versions are Postgres integers.
MAX_VERSION = 2**31 - 1
MAX_CHAIN_ID = 2**63 - 1
# Only ASCII: str.isdigit() and \d also accept other scripts' digits ("١٢٣").
_DECIMAL = re.compile(r"(?:0|[1-9][0-9]*)")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
# Longer text is refused before any regular expression looks at it.
_MAX_ECHO = 40


def _shown(raw: str) -> str:
    """The start of ``raw`` for an error message (never the whole of a huge input)."""
    return repr(raw[:_MAX_ECHO] + ("..." if len(raw) > _MAX_ECHO else ""))


def _bounded_int(raw: str, what: str, low: int, high: int) -> int:
    digits = len(str(high))
    if len(raw) > digits or not _DECIMAL.fullmatch(raw):
        raise BadRequestError(
            f"{what} must be a decimal integer from {low} to {high} without sign, exponent or "
            f"leading zeros; got {_shown(raw)}"
        )
    value = int(raw)
    if not low <= value <= high:
        raise BadRequestError(f"{what} must be from {low} to {high}; got {_shown(raw)}")
    return value


def parse_token_id(raw: str) -> int:
    """A uint256 token id in canonical decimal; BadRequestError otherwise."""
    return _bounded_int(raw, "token id", 0, MAX_TOKEN_ID)


def parse_version(raw: str) -> int:
    """A version number (1 and up); BadRequestError otherwise."""
    return _bounded_int(raw, "version", 1, MAX_VERSION)


def parse_sha256(raw: str) -> str:
    """64 lower-case hex digits (an image's sha256); BadRequestError otherwise."""
    if len(raw) != 64 or not _SHA256.fullmatch(raw):
        raise BadRequestError(
            f"an image name is its sha256 as 64 lower-case hex digits; got {_shown(raw)}"
        )
    return raw


def parse_address(raw: str) -> str:
    """A 0x-prefixed 20-byte hex address, returned in lower case; BadRequestError otherwise."""
    if len(raw) != 42 or not _ADDRESS.fullmatch(raw):
        raise BadRequestError(f"a contract address is 0x and 40 hex digits; got {_shown(raw)}")
    return raw.lower()


def parse_chain_id(raw: str) -> int:
    return _bounded_int(raw, "chain_id", 1, MAX_CHAIN_ID)


def parse_limit(raw: str | None, *, default: int, maximum: int) -> int:
    """A page size from 1 to ``maximum``; ``default`` when absent."""
    if raw is None:
        return default
    return _bounded_int(raw, "limit", 1, maximum)


def parse_cursor(raw: str | None, what: str, maximum: int) -> int:
    """An ``after`` cursor: entries strictly after this one (0 when absent)."""
    if raw is None:
        return 0
    return _bounded_int(raw, what, 0, maximum)
