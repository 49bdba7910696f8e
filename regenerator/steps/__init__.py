"""The render worker's steps, one job each, chained by :class:`regenerator.RenderWorker`:

1. :mod:`~regenerator.steps.lookup`: one query -> each job's action (announce, copy, render,
   stale, handled);
2. :mod:`~regenerator.steps.render`: chunks of the renderer's batch size, off the event loop;
3. :mod:`~regenerator.steps.check`: guardrails + store, retries with the next seed;
4. :mod:`~regenerator.steps.record`: one transaction per job (candidates, version, art hash),
   and :mod:`~regenerator.steps.copy` for a state the token had before;
5. :mod:`~regenerator.steps.announce`: metadata updates, sent once per batch, acknowledged
   before the caller commits.

:mod:`~regenerator.steps.jobs` holds the values passed between them.
"""

from regenerator.steps.announce import Announcements
from regenerator.steps.check import check_and_store, check_duplicates, render_checked
from regenerator.steps.copy import copy_earlier
from regenerator.steps.jobs import Attempt, LookedUp, Rendered, ToAnnounce, ToCopy, ToRender
from regenerator.steps.lookup import look_up
from regenerator.steps.record import candidate, record, record_chunk
from regenerator.steps.render import DEFAULT_CHUNK, chunks, render

__all__ = [
    "DEFAULT_CHUNK",
    "Announcements",
    "Attempt",
    "LookedUp",
    "Rendered",
    "ToAnnounce",
    "ToCopy",
    "ToRender",
    "candidate",
    "check_and_store",
    "check_duplicates",
    "chunks",
    "copy_earlier",
    "look_up",
    "record",
    "record_chunk",
    "render",
    "render_checked",
]
