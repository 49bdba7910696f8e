"""Renderer kinds by name: the built-in ones and those installed packages register under the
``dnft.renderers`` entry point group (docs/renderers.md).

An entry point names a factory: ``factory(setup: RendererSetup) -> Renderer``. It validates
its own settings (raising :class:`RendererSettingsError` naming the key) and loads whatever the
renderer needs once, before the first render.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType
from typing import Any, TypeAlias

import structlog

from dnft.collection.rules import BUILTIN_RENDERERS, RENDERER_ENTRY_POINTS, renderer_kinds
from dnft.errors import ConfigError
from regenerator.renderers.base import Renderer

log = structlog.get_logger(__name__)


class RendererSettingsError(ConfigError):
    """A renderer's own setting is invalid; ``key`` is relative to ``renderer`` (``dir``)."""


@dataclass(frozen=True, slots=True)
class RendererSetup:
    """What a renderer factory is given: the collection's renderer settings (every key of its
    ``renderer:`` mapping but ``kind``, ``params``, ``model_dir`` and ``lora``) and the
    names a render request can carry."""

    collection: str
    settings: Mapping[str, Any]
    stages: tuple[str, ...]
    buckets: tuple[str, ...]
    traits: tuple[str, ...]
    image_size: int
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "settings", MappingProxyType(dict(self.settings)))
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))


RendererFactory: TypeAlias = Callable[[RendererSetup], Renderer]


def _layers(setup: RendererSetup) -> Renderer:
    from regenerator.renderers.layers import LayersRenderer

    return LayersRenderer.from_setup(setup)


# Built-in kinds that go through the registry (procedural and diffusion keep their own paths
# in factory.py: they read the common keys, not settings).
_BUILTIN_FACTORIES: dict[str, RendererFactory] = {"layers": _layers}


def _entry_point(kind: str) -> EntryPoint | None:
    found = [ep for ep in entry_points(group=RENDERER_ENTRY_POINTS) if ep.name == kind]
    if len(found) > 1:
        values = sorted(ep.value for ep in found)
        raise ConfigError("renderer.kind", f"kind {kind!r} is registered twice: {values}")
    return found[0] if found else None


def factory_for(kind: str) -> RendererFactory:
    """The factory of ``kind``; ConfigError listing the installed kinds when none has it."""
    if kind in _BUILTIN_FACTORIES:
        return _BUILTIN_FACTORIES[kind]
    if kind in BUILTIN_RENDERERS:
        raise ConfigError("renderer.kind", f"{kind} is built by regenerator.renderers.factory")
    ep = _entry_point(kind)
    if ep is None:
        raise ConfigError(
            "renderer.kind", f"unknown renderer kind {kind!r} (installed: {renderer_kinds()})"
        )
    loaded = ep.load()
    if not callable(loaded):
        raise ConfigError("renderer.kind", f"entry point {ep.value} is not callable")
    log.info("renderer_plugin_loaded", kind=kind, entry_point=ep.value, dist=_dist(ep))
    return loaded  # type: ignore[no-any-return]


def _dist(ep: EntryPoint) -> str | None:
    dist = ep.dist
    return None if dist is None else f"{dist.name} {dist.version}"


def build_renderer(kind: str, setup: RendererSetup) -> Renderer:
    """Build ``kind`` for ``setup``; a settings error names ``renderer.KEY`` of the collection."""
    factory = factory_for(kind)
    try:
        renderer = factory(setup)
    except ConfigError as exc:
        key = f"renderer.{exc.key}" if exc.key else "renderer"
        raise ConfigError(f"collection {setup.collection}: {key}", exc.reason) from None
    if not isinstance(renderer, Renderer):
        raise ConfigError(
            f"collection {setup.collection}: renderer.kind",
            f"the {kind} factory returned {type(renderer).__name__}, not a Renderer",
        )
    return renderer
