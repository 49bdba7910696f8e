"""Re-render a stored version from its provenance and compare it with the stored image.

Procedural art must match exactly: the same bytes, or, where the PNG was deflated by another
library build, the same decoded pixels. Diffusion output depends on thread count and CPU
instruction set (FACTS: values differ by +-1 in a few places), so it is compared by pixels with
a small tolerance.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass

import asyncpg
import numpy as np
import orjson
from PIL import Image

from dnft.collection import BoundCollection, TokenState
from dnft.config import Settings
from dnft.errors import DnftError
from dnft.resources import DaemonResources
from dnft.storage import BlobStore, blob_store
from regenerator.metadata import render_request
from regenerator.renderers.base import Renderer
from regenerator.renderers.factory import renderer_for

# Diffusion: mean absolute difference per channel (0-255) and share of pixels off by > 8.
MEAN_TOLERANCE = 1.0
OUTLIER_SHARE = 0.01


class VersionNotFoundError(DnftError, LookupError):
    pass


@dataclass(frozen=True, slots=True)
class Verification:
    token_id: int
    version: int
    renderer: str
    matches: bool
    exact: bool
    mean_abs_diff: float
    detail: str


async def verify_stored(
    settings: Settings, bound: BoundCollection, token_id: int, version: int | None = None
) -> Verification:
    """``dnft verify``: :func:`verify_version` with the configured blob store, the collection's
    renderer and a pool of its own (closed before it returns)."""
    async with DaemonResources(settings, "verify") as res:
        pool = await res.pool()
        store = blob_store(settings)
        renderer = renderer_for(bound.collection)
        return await verify_version(pool, store, bound, renderer, token_id, version)


async def verify_version(
    pool: asyncpg.Pool,
    store: BlobStore,
    bound: BoundCollection,
    renderer: Renderer,
    token_id: int,
    version: int | None = None,
) -> Verification:
    """Re-render ``version`` (default: the latest) of a token; raises VersionNotFoundError."""
    name = bound.collection.name
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "select version, state, state_hash, image_sha256, metadata from token_versions "
            "where collection = $1 and token_id = $2 and ($3::int is null or version = $3) "
            "order by version desc limit 1",
            name,
            token_id,
            version,
        )
    if row is None:
        raise VersionNotFoundError(f"{name} token {token_id} has no version {version or ''}")
    body = orjson.loads(row["state"])
    state = TokenState(token_id, body["traits"], body["stage"])
    provenance = orjson.loads(row["metadata"])["provenance"]
    if state.state_hash != row["state_hash"]:
        return Verification(
            token_id,
            row["version"],
            renderer.name,
            False,
            False,
            0.0,
            "stored state does not hash to its state_hash",
        )
    request = render_request(bound.collection, state, int(provenance["seed"]))
    result = await asyncio.to_thread(renderer.render, request)
    stored = await asyncio.to_thread(store.get, row["image_sha256"])
    if result.sha256 == row["image_sha256"]:
        return Verification(
            token_id, row["version"], renderer.name, True, True, 0.0, "identical bytes"
        )
    mean, outliers = _pixel_difference(stored, result.png)
    if renderer.name == "procedural":
        # Exact pixels are required; only the PNG's deflate stream may differ (another
        # deflate library or CPU architecture than the one that stored the image).
        matches = mean == 0.0
    else:
        matches = mean <= MEAN_TOLERANCE and outliers <= OUTLIER_SHARE
    detail = f"mean |diff| {mean:.3f}, {outliers:.2%} pixels off by > 8"
    if matches and mean == 0.0:
        detail = "identical pixels; the PNG bytes differ (another deflate build)"
    return Verification(token_id, row["version"], renderer.name, matches, False, mean, detail)


def _pixel_difference(a: bytes, b: bytes) -> tuple[float, float]:
    first = np.asarray(Image.open(io.BytesIO(a)).convert("RGB"), dtype=np.int16)
    second = np.asarray(Image.open(io.BytesIO(b)).convert("RGB"), dtype=np.int16)
    if first.shape != second.shape:
        return float("inf"), 1.0
    diff = np.abs(first - second)
    return float(diff.mean()), float((diff.max(axis=2) > 8).mean())
