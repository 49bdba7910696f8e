"""Audit ``token_versions``: each version changes the token's state, and versions are 1..n.

Versions are a token's timeline: a token back in a state it had before gets a new version
(winter -> bear -> winter is three versions), but two consecutive versions never share a
state. Two kinds of damage are reported for the audited collections:

* duplicated: consecutive versions of a token (in version order) with the same state_hash,
  which is what a re-delivered or replayed render job would produce if the insert's guard
  (``dnft.timeline.versions``) were missing;
* gaps: a token whose version numbers are not exactly 1, 2, ..., n (a version lost, or
  numbered twice past another).

:func:`classify_versions` is the pure part; :func:`audit_versions` reads the rows. Reads
only; commits nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from audit.plain import Plain, plain
from dnft.errors import ServiceError


@dataclass(frozen=True, slots=True)
class VersionRow:
    """One ``token_versions`` row, as far as the audit needs it."""

    collection: str
    token_id: str  # decimal: uint256 ids do not fit a JSON number
    version: int
    state_hash: str


@dataclass(frozen=True, slots=True)
class DuplicatedState(Plain):
    """A run of consecutive versions of one token (two or more, in version order) with the
    same state."""

    collection: str
    token_id: str
    state_hash: str
    versions: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class VersionGap(Plain):
    """A token whose version numbers (sorted) are not exactly 1..n."""

    collection: str
    token_id: str
    versions: tuple[int, ...]


@dataclass(slots=True)
class VersionAudit:
    """What ``token_versions`` holds for the audited collections. Lists are sorted by
    collection, then token id (numerically), then version."""

    collections: tuple[str, ...]
    tokens: int = 0
    versions: int = 0
    duplicated: list[DuplicatedState] = field(default_factory=list)
    gaps: list[VersionGap] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.duplicated or self.gaps)

    def as_dict(self) -> dict[str, Any]:
        return {**plain(self, leave_out=("collections",)), "clean": self.clean}


def _token_order(collection: str, token_id: str) -> tuple[str, int, str]:
    # Numeric order for decimal ids; anything else still sorts (after, by text).
    return (collection, int(token_id) if token_id.isdigit() else -1, token_id)


def _repeats(collection: str, token_id: str, ordered: list[VersionRow]) -> list[DuplicatedState]:
    """The runs of consecutive versions with one state in ``ordered`` (one token's rows,
    sorted by version)."""
    runs: list[DuplicatedState] = []
    start = 0
    for i in range(1, len(ordered) + 1):
        if i == len(ordered) or ordered[i].state_hash != ordered[start].state_hash:
            if i - start > 1:
                versions = tuple(r.version for r in ordered[start:i])
                runs.append(
                    DuplicatedState(collection, token_id, ordered[start].state_hash, versions)
                )
            start = i
    return runs


def classify_versions(collections: Sequence[str], rows: Iterable[VersionRow]) -> VersionAudit:
    """Count tokens and versions and find repeated states and numbering gaps. Pure."""
    by_token: defaultdict[tuple[str, str], list[VersionRow]] = defaultdict(list)
    count = 0
    for row in rows:
        count += 1
        by_token[(row.collection, row.token_id)].append(row)
    duplicated: list[DuplicatedState] = []
    gaps = []
    for (collection, token_id), token_rows in by_token.items():
        token_rows.sort(key=lambda r: r.version)
        duplicated += _repeats(collection, token_id, token_rows)
        numbers = tuple(r.version for r in token_rows)
        if numbers != tuple(range(1, len(numbers) + 1)):
            gaps.append(VersionGap(collection, token_id, numbers))
    duplicated.sort(key=lambda d: (*_token_order(d.collection, d.token_id), d.versions))
    gaps.sort(key=lambda g: _token_order(g.collection, g.token_id))
    return VersionAudit(
        collections=tuple(sorted(collections)),
        tokens=len(by_token),
        versions=count,
        duplicated=duplicated,
        gaps=gaps,
    )


async def audit_versions(conn: asyncpg.Connection, collections: Sequence[str]) -> VersionAudit:
    """Audit every version of ``collections`` (the whole table for them: versions carry no
    block). Reads one small row per version into memory. Reads only.

    Raises ServiceError when ``token_versions`` does not exist (migrations not applied).
    """
    try:
        records = await conn.fetch(
            "select collection, token_id::text, version, state_hash from token_versions "
            "where collection = any($1::text[])",
            list(collections),
        )
    except asyncpg.UndefinedTableError as exc:
        raise ServiceError(f"{exc}: run `dnft migrate` first") from exc
    return classify_versions(collections, (VersionRow(r[0], r[1], r[2], r[3]) for r in records))


__all__ = [
    "DuplicatedState",
    "VersionAudit",
    "VersionGap",
    "VersionRow",
    "audit_versions",
    "classify_versions",
]
