"""The art-hash index: each token's current public art as a 64-bit perceptual hash, in
Postgres, so a new render's near duplicates are found through band indexes instead of a scan.

Written when a version goes public (the render worker, a curator's approval); read by the
near-duplicate guardrail.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

HASH_BITS = 64
# The hash is cut into this many 16-bit bands, each indexed in Postgres: two hashes within
# BANDS - 1 bits of each other share at least one band exactly (pigeonhole), so a near
# duplicate is found through the band indexes, without reading every token's hash.
BANDS = 4
MAX_INDEXED_DISTANCE = BANDS - 1


def hamming(a: int, b: int) -> int:
    """Bits that differ between two 64-bit hashes (signed or not)."""
    return ((a ^ b) & ((1 << HASH_BITS) - 1)).bit_count()


def hash_bands(phash: int) -> list[int]:
    """The hash's BANDS 16-bit bands, most significant first (indexed in Postgres)."""
    unsigned = phash & ((1 << HASH_BITS) - 1)
    width = HASH_BITS // BANDS
    return [(unsigned >> (width * (BANDS - 1 - i))) & ((1 << width) - 1) for i in range(BANDS)]


_NEAR = (
    "select distinct on (k.i) k.i, h.token_id, h.version, "
    "bit_count(int8send(h.phash # k.phash)) as distance "
    "from unnest($2::bigint[], $3::numeric[], $4::int[], $5::int[], $6::int[], $7::int[]) "
    "with ordinality as k(phash, token_id, b0, b1, b2, b3, i) "
    "join curation_art_hashes h on h.collection = $1 "
    "and (h.band0 = k.b0 or h.band1 = k.b1 or h.band2 = k.b2 or h.band3 = k.b3) "
    "where bit_count(int8send(h.phash # k.phash)) <= $8 "
    "and (($9 and h.token_id = k.token_id) or ($10 and h.token_id <> k.token_id)) "
    "order by k.i, (h.token_id = k.token_id) desc, distance"
)


async def near_duplicates(
    conn: asyncpg.Connection,
    collection: str,
    items: Sequence[tuple[int, int]],
    *,
    distance: int,
    previous: bool,
    others: bool,
) -> dict[int, tuple[int, int, int]]:
    """For each ``(token_id, phash)`` of ``items`` (by index) within ``distance`` bits (at most
    ``guardrails.MAX_INDEXED_DISTANCE``) of the token's own current art (``previous``) or of
    another token's (``others``): ``(of_token, version, bits)``, the token's own first. One
    query, through the band indexes."""
    if not items:
        return {}
    bands = [hash_bands(phash) for _, phash in items]
    rows = await conn.fetch(
        _NEAR,
        collection,
        [phash for _, phash in items],
        [token for token, _ in items],
        *([b[n] for b in bands] for n in range(4)),
        distance,
        previous,
        others,
    )
    return {
        int(r["i"]) - 1: (int(r["token_id"]), int(r["version"]), int(r["distance"])) for r in rows
    }


async def set_art_hash(
    conn: asyncpg.Connection, collection: str, token_id: int, version: int, phash: int
) -> None:
    """Record ``version`` as the token's current public art."""
    b = hash_bands(phash)
    await conn.execute(
        "insert into curation_art_hashes as h "
        "(collection, token_id, version, phash, band0, band1, band2, band3) "
        "values ($1, $2, $3, $4, $5, $6, $7, $8) on conflict (collection, token_id) do update "
        "set version = excluded.version, phash = excluded.phash, band0 = excluded.band0, "
        "band1 = excluded.band1, band2 = excluded.band2, band3 = excluded.band3 "
        "where h.version < excluded.version",
        collection,
        token_id,
        version,
        phash,
        *b,
    )
