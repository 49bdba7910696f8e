"""Step 4 for a returning state: publish the token's return to a state it had before as a
new version copying that state's newest earlier one (image, metadata and state: nothing is
rendered again, nothing reviewed: it was public before).

One transaction per job: the copied version and, with the guardrails on, its art hash (the
earlier image's perceptual hash, read from the blob store in a thread first; an image that is
gone or does not decode is logged and leaves the hash unset). Returns None when another
delivery of the job copied it already. A new version is queued on the batch's
:class:`~regenerator.steps.announce.Announcements`, counted in
``dnft_renders_total{outcome="copied"}`` and logged. Raises what asyncpg raises, and
StorageError when the blob store fails.
"""

from __future__ import annotations

import asyncio

import asyncpg
import orjson
import structlog

from dnft import metrics
from dnft.errors import DecodeError
from dnft.storage import BlobIntegrityError, BlobNotFoundError, BlobStore
from dnft.timeline import copy_version, set_art_hash
from regenerator.guardrails import measure_png
from regenerator.steps.announce import Announcements
from regenerator.steps.jobs import ToCopy

log = structlog.get_logger("dnft.regenerator.render")


async def copy_earlier(
    pool: asyncpg.Pool, store: BlobStore, copy: ToCopy, announcements: Announcements
) -> int | None:
    """Insert the copy (one transaction); returns the new version, or None."""
    job = copy.job
    name = copy.bound.collection.name
    phash = None
    if copy.bound.collection.guardrails.enabled:
        phash = await _phash(store, copy.image_sha256)
    triggered_by = orjson.dumps(list(job.triggered_by)).decode()
    async with pool.acquire() as conn, conn.transaction():
        row = await copy_version(conn, name, job.token_id, job.state_hash, triggered_by)
        if row is None:
            return None
        if phash is not None:
            await set_art_hash(conn, name, job.token_id, int(row["version"]), phash)
    metrics.renders_total.labels(name, "copied").inc()
    announcements.add(copy.bound, job.token_id, row)
    log.info(
        "version copied: the token is back in an earlier state",
        collection=name,
        token=job.token_id,
        state=job.state_hash[:12],
        version=row["version"],
        image=copy.image_sha256[:12],
    )
    return int(row["version"])


async def _phash(store: BlobStore, image_sha256: str) -> int | None:
    """The perceptual hash of a stored image, or None (logged) when it is gone or does not
    decode. Raises StorageError when the store fails."""
    try:
        png = await asyncio.to_thread(store.get, image_sha256)
        facts = await asyncio.to_thread(measure_png, png)
    except (BlobNotFoundError, BlobIntegrityError, DecodeError) as exc:
        log.warning("copied version's image unreadable", image=image_sha256, error=str(exc))
        return None
    return facts.phash
