"""Step 3: check each render against the collection's guardrails and store what is sound,
rendering again with the next seed what fails.

For a chunk of jobs, each round renders the jobs still to pass (one ``render_batch`` call,
:mod:`regenerator.steps.render`), then, in one worker-thread hop for the chunk (it blocks:
decoding, hashing, file or S3 I/O), runs the image guardrails (format, size, blank), stores
the image once it decodes, builds the metadata and stores it once it passes the schema; then
the near-duplicate guardrail asks Postgres once for the renders that passed the others. A job
whose render failed a check is tried again with the next seed (``attempt_seed``), up to
``guardrails.max_attempts`` renders (one render when the guardrails are off); each failure is
counted in ``dnft_guardrail_rejections_total`` and logged.

Writes blobs only (content-addressed, so a retried batch writes nothing new); nothing in
Postgres: :mod:`regenerator.steps.record` records the outcome. Raises what the renderer, the
blob store (StorageError) and asyncpg raise.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import asyncpg
import orjson
import structlog

from dnft import metrics
from dnft.collection import BoundCollection, attempt_seed
from dnft.storage import BlobStore
from dnft.timeline import near_duplicates
from regenerator.guardrails import (
    ImageLimits,
    check_image,
    check_metadata,
    duplicate_failure,
)
from regenerator.metadata import build_metadata
from regenerator.renderers.base import Renderer, RenderResult
from regenerator.steps.jobs import Attempt, Rendered, ToRender
from regenerator.steps.render import render

log = structlog.get_logger("dnft.regenerator.render")


async def render_checked(
    chunk: list[ToRender],
    renderer: Renderer,
    store: BlobStore,
    pool: asyncpg.Pool,
    *,
    public_url: str,
) -> list[Rendered]:
    """Render ``chunk`` (one collection) until each job passes its guardrails or runs out of
    attempts; each job's attempts, in chunk order."""
    bound = chunk[0].bound
    name = bound.collection.name
    rails = bound.collection.guardrails
    failed: list[list[Attempt]] = [[] for _ in chunk]
    passed: dict[int, Attempt] = {}
    todo = list(range(len(chunk)))
    for number in range(rails.max_attempts if rails.enabled else 1):
        requests = [
            replace(chunk[i].request, seed=attempt_seed(chunk[i].request.seed, number))
            for i in todo
        ]
        results = await render(renderer, name, requests)
        checked = await asyncio.to_thread(
            check_and_store, [chunk[i] for i in todo], results, number, store, public_url
        )
        await check_duplicates(pool, bound, checked)
        retry = []
        for i, attempt in zip(todo, checked, strict=True):
            if attempt.failures:
                failed[i].append(attempt)
                retry.append(i)
                for failure in attempt.failures:
                    metrics.guardrail_rejections_total.labels(name, failure.check).inc()
                log.info(
                    "render failed its guardrails",
                    collection=name,
                    token=attempt.job.state.token_id,
                    attempt=number,
                    seed=attempt.request.seed,
                    failed=[f.check for f in attempt.failures],
                )
            else:
                passed[i] = attempt
        todo = retry
        if not todo:
            break
    return [Rendered(job, failed[i], passed.get(i)) for i, job in enumerate(chunk)]


def check_and_store(
    jobs: list[ToRender],
    results: list[RenderResult],
    number: int,
    store: BlobStore,
    public_url: str,
) -> list[Attempt]:
    """Run the image and metadata guardrails on each render of attempt ``number`` and store
    what is sound. Blocks (decoding, hashing, file or S3 I/O): call it in a thread."""
    return [
        _check_and_store_one(job, result, number, store, public_url)
        for job, result in zip(jobs, results, strict=True)
    ]


def _check_and_store_one(
    job: ToRender, result: RenderResult, number: int, store: BlobStore, public_url: str
) -> Attempt:
    collection = job.bound.collection
    rails = collection.guardrails
    request = replace(job.request, seed=attempt_seed(job.request.seed, number))
    attempt = Attempt(job, request, number)
    if rails.enabled:
        limits = ImageLimits(collection.image_size, rails.min_entropy_bits, rails.min_stddev)
        attempt.facts, failures = check_image(
            result.png,
            width=result.width,
            height=result.height,
            limits=limits,
            pixels=result.pixels,
        )
        attempt.failures.extend(failures)
        if attempt.facts is None:
            return attempt  # not an image: nothing worth storing
    attempt.image = store.put(result.png, "image/png")
    document = build_metadata(
        collection,
        job.state,
        result,
        image_uri=f"{public_url}/images/{attempt.image.sha256}",
        image_cid=attempt.image.cid,
        triggered_by=list(job.job.triggered_by),
        prompt=job.request.prompt,
    )
    invalid = check_metadata(document)
    if invalid:
        attempt.failures.extend(invalid)
        return attempt
    attempt.meta_bytes = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    attempt.meta = store.put(attempt.meta_bytes, "application/json")
    return attempt


async def check_duplicates(
    pool: asyncpg.Pool, bound: BoundCollection, attempts: list[Attempt]
) -> None:
    """The near-duplicate guardrail for renders that passed the others: one query; adds a
    failure to each attempt too close to the token's previous art or another token's."""
    rails = bound.collection.guardrails
    if not rails.enabled or rails.duplicate_distance is None:
        return
    subjects = [a for a in attempts if a.facts is not None and not a.failures]
    async with pool.acquire() as conn:
        near = await near_duplicates(
            conn,
            bound.collection.name,
            [(a.job.state.token_id, a.phash) for a in subjects],
            distance=rails.duplicate_distance,
            previous="previous" in rails.duplicate_of,
            others="collection" in rails.duplicate_of,
        )
    for i, (of_token, version, bits) in near.items():
        a = subjects[i]
        a.failures.append(duplicate_failure(bits, of_token, a.job.state.token_id, version))
