"""The renderer a collection asks for, built once at start-up (a bad model dir fails here)."""

from __future__ import annotations

from dnft.collection import Collection, TokenState
from regenerator.metadata import bucket_of
from regenerator.renderers.base import Renderer
from regenerator.renderers.procedural import ProceduralRenderer


def renderer_for(collection: Collection) -> Renderer:
    """Raises ModelLoadError (diffusion) when the model directory or the LoRA weights are
    missing or corrupt, MissingDependencyError for LoRA weights without ``peft``."""
    stages = [level.name for level in collection.stages.levels]
    empty = TokenState(0, {}, stages[0])
    buckets, _ = bucket_of(collection, empty)
    if collection.renderer.kind == "procedural":
        return ProceduralRenderer(stages=stages, buckets=buckets)
    from regenerator.renderers.diffusion import DiffusionRenderer

    assert collection.renderer.model_dir is not None  # checked when the collection loads
    return DiffusionRenderer.load(collection.renderer.model_dir, lora=collection.renderer.lora_path)
