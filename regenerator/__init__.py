"""The regenerator: plans token evolutions from chain events and feed readings, and renders
them into versions (images + metadata) announced as metadata updates.

* :func:`run_regenerator` (``regenerator.pipeline``): the
  daemon, planner and render roles;
* :class:`Planner` (``regenerator.planner``): events -> token states -> render jobs;
* :class:`RenderWorker` (``regenerator.render_worker``): render jobs -> versions, through the
  steps of ``regenerator.steps``;
* :func:`rerender`, :func:`verify_version` and :func:`render_backlog`: operator commands.

Renderers live in ``regenerator.renderers`` (the diffusion renderer, which needs torch, is
imported only from ``regenerator.renderers.diffusion``).
"""

from regenerator.guardrails import CHECKS, Failure, ImageFacts, ImageLimits
from regenerator.metadata import bucket_of, build_metadata, render_prompt, render_request
from regenerator.pipeline import Role, run_regenerator
from regenerator.planner import PlannedJob, Planner, PlannerInput
from regenerator.render_worker import RenderWorker
from regenerator.renderers.factory import renderer_for
from regenerator.rerender import RerenderReport, Selection, rerender, rerender_selection
from regenerator.status import RenderBacklog, render_backlog
from regenerator.verify import Verification, VersionNotFoundError, verify_stored, verify_version

__all__ = [
    "CHECKS",
    "Failure",
    "ImageFacts",
    "ImageLimits",
    "PlannedJob",
    "Planner",
    "PlannerInput",
    "RenderBacklog",
    "RenderWorker",
    "RerenderReport",
    "Role",
    "Selection",
    "Verification",
    "VersionNotFoundError",
    "bucket_of",
    "build_metadata",
    "render_backlog",
    "render_prompt",
    "render_request",
    "renderer_for",
    "rerender",
    "rerender_selection",
    "run_regenerator",
    "verify_stored",
    "verify_version",
]
