"""Step 2: render requests in chunks of the renderer's batch size, off the event loop.

:func:`chunks` cuts the jobs to render into chunks of one collection each, of the renderer's
``max_batch`` (a diffusion pipeline renders a chunk in one call on the GPU). :func:`render`
runs one ``render_batch`` call in a worker thread (the event loop keeps serving other
chunks' queries meanwhile), observing ``dnft_render_seconds`` per image; when the renderer
raises, the requests are counted in ``dnft_renders_total{outcome="failed"}`` and the error
propagates (the batch fails; nothing is committed). Writes nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence

from dnft import metrics
from regenerator.renderers.base import Renderer, RenderRequest, RenderResult
from regenerator.steps.jobs import ToRender

# Chunk size for renderers that do not say how many requests one call should take.
DEFAULT_CHUNK = 8


def chunks(jobs: Sequence[ToRender], renderers: Mapping[str, Renderer]) -> list[list[ToRender]]:
    """``jobs`` by collection (in order of first appearance), each cut into chunks of its
    renderer's batch size."""
    out: list[list[ToRender]] = []
    for name in dict.fromkeys(j.bound.collection.name for j in jobs):
        of_collection = [j for j in jobs if j.bound.collection.name == name]
        size = max(1, int(getattr(renderers[name], "max_batch", DEFAULT_CHUNK)))
        out += [of_collection[i : i + size] for i in range(0, len(of_collection), size)]
    return out


async def render(
    renderer: Renderer, collection: str, requests: list[RenderRequest]
) -> list[RenderResult]:
    """One ``render_batch`` call, in a thread; results in request order."""
    started = time.perf_counter()
    try:
        results = await asyncio.to_thread(renderer.render_batch, requests)
    except Exception:
        metrics.renders_total.labels(collection, "failed").inc(len(requests))
        raise
    each = (time.perf_counter() - started) / len(requests)
    for _ in requests:
        metrics.render_seconds.labels(renderer.name).observe(each)
    return results
