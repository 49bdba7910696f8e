"""The renderer a collection asks for, built once at start-up (a bad model dir, layers folder
or plugin setting fails here)."""

from __future__ import annotations

from dnft.collection import Collection, TokenState
from regenerator.metadata import bucket_of
from regenerator.renderers.base import Renderer
from regenerator.renderers.procedural import ProceduralRenderer
from regenerator.renderers.registry import RendererSetup, build_renderer


def renderer_setup(collection: Collection) -> RendererSetup:
    """What a renderer factory is given for ``collection``."""
    stages = [level.name for level in collection.stages.levels]
    buckets, _ = bucket_of(collection, TokenState(0, {}, stages[0]))
    return RendererSetup(
        collection=collection.name,
        settings=collection.renderer.settings,
        stages=tuple(stages),
        buckets=tuple(buckets),
        traits=tuple(t.name for t in collection.traits),
        image_size=collection.image_size,
        params=collection.renderer.params,
    )


def renderer_for(collection: Collection) -> Renderer:
    """Raises ModelLoadError (diffusion) when the model directory or the LoRA weights are
    missing or corrupt, MissingDependencyError for LoRA weights without ``peft``, ConfigError
    naming ``renderer.KEY`` for a bad layers folder or plugin setting."""
    setup = renderer_setup(collection)
    kind = collection.renderer.kind
    if kind == "procedural":
        return ProceduralRenderer(stages=list(setup.stages), buckets=list(setup.buckets))
    if kind == "diffusion":
        from regenerator.renderers.diffusion import DiffusionRenderer

        assert collection.renderer.model_dir is not None  # checked when the collection loads
        return DiffusionRenderer.load(
            collection.renderer.model_dir, lora=collection.renderer.lora_path
        )
    return build_renderer(kind, setup)
