"""Where a value sits in a JSON document: an RFC 6901 pointer or a dotted path.

Both forms compile to the same steps::

    /data/0/price          pointer: "/" separated, "~1" is "/", "~0" is "~"
    data[0].price          dotted: "." separated keys, "[N]" list indexes
    data.0.price           a purely numeric key also indexes a list
    $.data[0].price        an optional leading "$." (JSONPath habit)

Pure functions, no I/O. ``parse_path`` raises ``ValueError`` (settings report it under the
feed's key); ``resolve`` raises ``PathNotFoundError``.
"""

from __future__ import annotations

import re
from typing import Any, Final

from dnft.errors import DecodeError

Step = str | int
"""A key (``str``; all digits also indexes a list) or a list index (``int``)."""

_DOTTED_SEGMENT: Final = re.compile(r"([^.\[\]]+)((?:\[\d+\])*)")
_INDEX: Final = re.compile(r"\[(\d+)\]")
_CANONICAL_INDEX: Final = re.compile(r"0|[1-9][0-9]*")


class PathNotFoundError(DecodeError):
    """The document has no value at the path (a missing key, index or a scalar in the way)."""


def parse_path(path: str) -> tuple[Step, ...]:
    """Compile ``path``; raises ``ValueError`` if it is empty or malformed."""
    if not path:
        raise ValueError("path is empty")
    if path.startswith("/"):
        return tuple(token.replace("~1", "/").replace("~0", "~") for token in path[1:].split("/"))
    if path.startswith("$."):
        path = path[2:]
    steps: list[Step] = []
    for segment in path.split("."):
        match = _DOTTED_SEGMENT.fullmatch(segment)
        if match is None:
            raise ValueError(
                f"cannot parse path {path!r} at {segment!r}: use keys separated by '.', "
                "list indexes as [N], or a JSON pointer starting with '/'"
            )
        steps.append(match.group(1))
        steps.extend(int(i) for i in _INDEX.findall(match.group(2)))
    return tuple(steps)


def resolve(document: Any, steps: tuple[Step, ...]) -> Any:
    """The value at ``steps`` in ``document``; raises ``PathNotFoundError`` naming where."""
    node = document
    for depth, step in enumerate(steps):
        where = "/" + "/".join(str(s) for s in steps[:depth]) if depth else "the root"
        if isinstance(node, dict):
            if isinstance(step, int) or step not in node:
                raise PathNotFoundError(f"no key {step!r} at {where}")
            node = node[step]
        elif isinstance(node, list):
            if isinstance(step, str):
                if not _CANONICAL_INDEX.fullmatch(step):
                    raise PathNotFoundError(f"key {step!r} asked of a list at {where}")
                step = int(step)
            if step >= len(node):
                raise PathNotFoundError(f"index {step} past the end of the list at {where}")
            node = node[step]
        else:
            raise PathNotFoundError(f"{type(node).__name__} at {where} has no {step!r}")
    return node
