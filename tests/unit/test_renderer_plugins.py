"""Renderer plugins: kinds from the ``dnft.renderers`` entry point group, chosen by a
collection's ``renderer: {kind: ...}``, their settings validated by the plugin."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import pytest

from dnft.collection import collection_from_mapping
from dnft.collection.rules import renderer_kinds
from dnft.errors import ConfigError
from regenerator.renderers import ProceduralRenderer, Renderer, RenderRequest
from regenerator.renderers.factory import renderer_for
from regenerator.renderers.registry import RendererSetup, build_renderer, factory_for
from tests.support.rules import RULES


def _rules(**renderer: Any) -> dict[str, Any]:
    return RULES | {"renderer": renderer, "image_size": 64}


def _request(**traits: str | int) -> RenderRequest:
    return RenderRequest(token_id=3, traits=traits, stage="kid", bucket="bull", seed=1, size=64)


def procedural_factory(setup: RendererSetup) -> Renderer:
    """A factory as a plugin writes one (the fake entry point below names it)."""
    return ProceduralRenderer(stages=setup.stages, buckets=setup.buckets)


class TestInstalledExample:
    """examples/dnft-renderer-example, installed by `make install`, found through its entry
    point (not imported by name) and rendering through the factory a worker uses."""

    def test_registry_finds_the_example_plugin(self) -> None:
        eps = importlib.metadata.entry_points(group="dnft.renderers")
        assert "stripes" in {ep.name for ep in eps}, (
            "examples/dnft-renderer-example is not installed: run `make install`"
        )
        assert "stripes" in renderer_kinds()
        assert factory_for("stripes").__module__ == "dnft_renderer_example"

    def test_collection_renders_with_the_plugin(self) -> None:
        collection = collection_from_mapping(_rules(kind="stripes", stripes=5))
        assert collection.renderer.settings == {"stripes": 5}
        renderer = renderer_for(collection)
        assert isinstance(renderer, Renderer)
        assert renderer.name == "stripes"
        calm, happy = (
            renderer.render(_request(mood="calm")),
            renderer.render(_request(mood="happy")),
        )
        assert calm.png == renderer.render(_request(mood="calm")).png  # deterministic
        assert calm.sha256 != happy.sha256
        assert calm.pixels is not None
        # Five bands: five distinct rows of colour.
        assert len({tuple(row[0]) for row in calm.pixels}) == 5

    def test_plugin_validates_its_own_settings(self) -> None:
        collection = collection_from_mapping(_rules(kind="stripes", stripes=500))
        with pytest.raises(
            ConfigError, match=r"^collection sample: renderer\.stripes: must be an integer"
        ):
            renderer_for(collection)
        collection = collection_from_mapping(_rules(kind="stripes", colour="red"))
        with pytest.raises(ConfigError, match=r"renderer\.colour: not a setting of kind stripes"):
            renderer_for(collection)


class TestKinds:
    def test_unknown_kind_names_file_key_and_installed_kinds(self) -> None:
        with pytest.raises(ConfigError) as caught:
            collection_from_mapping(_rules(kind="watercolour"), source="art.yaml")
        assert caught.value.key == "art.yaml: renderer.kind"
        assert "unknown renderer kind 'watercolour'" in caught.value.reason
        for kind in ("diffusion", "layers", "procedural"):
            assert kind in caught.value.reason

    def test_builtin_kinds_take_no_settings(self) -> None:
        with pytest.raises(
            ConfigError, match=r"renderer kind procedural takes no settings \['dir'\]"
        ):
            collection_from_mapping(_rules(kind="procedural", dir="art"))
        plain = collection_from_mapping(_rules())
        assert plain.renderer.kind == "procedural"
        assert plain.renderer.settings == {}
        assert isinstance(renderer_for(plain), ProceduralRenderer)

    def test_a_fake_entry_point_is_loaded_and_checked(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Any distribution's entry point works, and a factory must return a Renderer."""
        good = importlib.metadata.EntryPoint(
            "proc", "tests.unit.test_renderer_plugins:procedural_factory", "dnft.renderers"
        )
        bad = importlib.metadata.EntryPoint("broken", "builtins:repr", "dnft.renderers")

        def entry_points(*, group: str) -> importlib.metadata.EntryPoints:
            assert group == "dnft.renderers"
            return importlib.metadata.EntryPoints([good, bad])

        monkeypatch.setattr("dnft.collection.rules.entry_points", entry_points)
        monkeypatch.setattr("regenerator.renderers.registry.entry_points", entry_points)
        assert renderer_kinds() == ["broken", "diffusion", "layers", "proc", "procedural"]
        setup = RendererSetup("sample", {}, ("egg",), ("none",), ("fed",), 64)
        proc = build_renderer("proc", setup)
        assert isinstance(proc, ProceduralRenderer)
        assert proc.stages == ("egg",)
        with pytest.raises(ConfigError, match=r"the broken factory returned str, not a Renderer"):
            build_renderer("broken", setup)
        with pytest.raises(ConfigError, match=r"installed: \['broken', 'diffusion'"):
            build_renderer("stripes", setup)
        twin = importlib.metadata.EntryPoint("proc", "builtins:repr", "dnft.renderers")
        clash = importlib.metadata.EntryPoint("layers", "builtins:repr", "dnft.renderers")
        monkeypatch.setattr(
            "regenerator.renderers.registry.entry_points",
            lambda *, group: importlib.metadata.EntryPoints([good, twin, clash]),
        )
        with pytest.raises(ConfigError, match=r"kind 'proc' is registered twice"):
            build_renderer("proc", setup)
        assert factory_for("layers").__module__ == "regenerator.renderers.registry"
