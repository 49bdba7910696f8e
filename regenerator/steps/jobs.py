"""What a render job becomes as it moves through the render worker's steps.

:mod:`~regenerator.steps.lookup` turns each job into one of :class:`ToAnnounce`,
:class:`ToCopy` or :class:`ToRender`; :mod:`~regenerator.steps.check` turns each
:class:`ToRender` into a :class:`Rendered` (its :class:`Attempt` s after the guardrails);
:mod:`~regenerator.steps.record` and :mod:`~regenerator.steps.copy` record them. Plain values;
nothing here blocks or does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from dnft.collection import BoundCollection, TokenState
from dnft.messages import RenderJob
from dnft.storage import StoredBlob
from regenerator.guardrails import Failure, ImageFacts
from regenerator.renderers.base import RenderRequest


@dataclass(frozen=True, slots=True)
class ToAnnounce:
    """A job whose state is the token's newest version already: announced again (consumers
    dedupe by version). ``row`` is that version (as ``dnft.timeline.metadata_update`` reads)."""

    bound: BoundCollection
    token_id: int
    row: asyncpg.Record


@dataclass(frozen=True, slots=True)
class ToCopy:
    """A job whose state the token is back in: its newest earlier version is copied."""

    bound: BoundCollection
    job: RenderJob
    image_sha256: str  # the earlier version's image, for the art-hash index


@dataclass(frozen=True, slots=True)
class ToRender:
    """A job that needs rendering: its token's current state is the job's state."""

    bound: BoundCollection
    job: RenderJob
    state: TokenState
    request: RenderRequest  # with the job's seed; an attempt's seed derives from it


@dataclass(slots=True)
class Attempt:
    """One render attempt after its guardrails: what failed, and what was stored."""

    job: ToRender
    request: RenderRequest  # with this attempt's seed
    number: int  # 0 for the first attempt
    failures: list[Failure] = field(default_factory=list)
    facts: ImageFacts | None = None  # None: guardrails off, or not an image
    image: StoredBlob | None = None
    meta: StoredBlob | None = None
    meta_bytes: bytes = b""

    @property
    def phash(self) -> int:
        assert self.facts is not None
        return self.facts.phash


@dataclass(frozen=True, slots=True)
class Rendered:
    """A job's attempts: the ones that failed their guardrails, in order, and the one that
    passed (None when every attempt failed)."""

    job: ToRender
    failed: list[Attempt]
    passed: Attempt | None


@dataclass(slots=True)
class LookedUp:
    """A batch of jobs after the lookup: what to announce, copy and render (at most one
    job per token is left to render or copy)."""

    announce: list[ToAnnounce] = field(default_factory=list)
    copy: list[ToCopy] = field(default_factory=list)
    render: list[ToRender] = field(default_factory=list)
