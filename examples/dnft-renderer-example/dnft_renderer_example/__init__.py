"""An example dnft renderer plugin: ``stripes`` flat horizontal bands.

Each band's colour is the start of sha256(kind, setting, token state, band index): the image
is a pure function of the request, so versions re-render byte for byte (``dnft verify``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Sequence

import numpy as np

from regenerator.renderers import RenderRequest, RenderResult, encode_png
from regenerator.renderers.registry import RendererSettingsError, RendererSetup

__all__ = ["StripesRenderer", "make_renderer"]


class StripesRenderer:
    name = "stripes"
    version = "1"

    def __init__(self, stripes: int, stages: Sequence[str]) -> None:
        self.stripes = stripes
        self.stages = tuple(stages)

    def _colour(self, request: RenderRequest, band: int) -> list[int]:
        state = {
            "stripes": self.stripes,
            "token_id": request.token_id,
            "traits": dict(sorted(request.traits.items())),
            "stage": request.stage,
            "bucket": request.bucket,
            "band": band,
        }
        digest = hashlib.sha256(json.dumps(state, sort_keys=True).encode()).digest()
        return list(digest[:3])

    def render(self, request: RenderRequest) -> RenderResult:
        pixels = np.empty((request.size, request.size, 3), dtype=np.uint8)
        edges = np.linspace(0, request.size, self.stripes + 1).astype(int)
        for band, (top, bottom) in enumerate(itertools.pairwise(edges)):
            pixels[top:bottom] = self._colour(request, band)
        return RenderResult.build(
            encode_png(pixels),
            width=request.size,
            height=request.size,
            renderer=self.name,
            renderer_version=self.version,
            provenance={"stripes": self.stripes, "stage": request.stage, "seed": request.seed},
            pixels=pixels,
        )

    def render_batch(self, requests: Sequence[RenderRequest]) -> list[RenderResult]:
        return [self.render(request) for request in requests]


def make_renderer(setup: RendererSetup) -> StripesRenderer:
    """The ``dnft.renderers`` entry point: validate the settings, build the renderer once."""
    unknown = sorted(set(setup.settings) - {"stripes"})
    if unknown:
        raise RendererSettingsError(unknown[0], "not a setting of kind stripes (its: stripes)")
    stripes = setup.settings.get("stripes", 4)
    if not isinstance(stripes, int) or isinstance(stripes, bool) or not 1 <= stripes <= 64:
        raise RendererSettingsError("stripes", f"must be an integer from 1 to 64, got {stripes!r}")
    return StripesRenderer(stripes, setup.stages)
