"""Renderers behind one Protocol: procedural (numpy, no weights), diffusion (diffusers),
layers (stacked PNG trait art, ``regenerator.renderers.layers``) and plugin kinds from the
``dnft.renderers`` entry point group (``regenerator.renderers.registry``). The protocol is a
public interface: docs/renderers.md.

The diffusion renderer is not imported here: it pulls in torch and diffusers, which only render
workers install. Import it from ``regenerator.renderers.diffusion``.
"""

from regenerator.renderers.base import (
    ModelLoadError,
    Renderer,
    RenderError,
    RenderInputError,
    RenderRequest,
    RenderResult,
    encode_png,
)
from regenerator.renderers.procedural import ProceduralRenderer

__all__ = [
    "ModelLoadError",
    "ProceduralRenderer",
    "RenderError",
    "RenderInputError",
    "RenderRequest",
    "RenderResult",
    "Renderer",
    "encode_png",
]
