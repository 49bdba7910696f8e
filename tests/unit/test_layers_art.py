"""kind: layers: manifest validation, compositing (blend, opacity), byte-exact determinism."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import yaml
from PIL import Image

from dnft.errors import ConfigError
from regenerator.renderers import RenderInputError, RenderRequest, encode_png
from regenerator.renderers.layers import LayersRenderer, paint_of
from regenerator.renderers.registry import RendererSettingsError
from tests.support.scripts import load_script

SIZE = 16
STAGES = ("egg", "kid")
TRAITS = ("fed", "mood", "market")


def _png(
    path: Path, rgba: tuple[int, int, int, int], box: tuple[int, int, int, int] | None = None
) -> None:
    """A SIZE x SIZE RGBA PNG: ``rgba`` inside ``box`` (x0, y0, x1, y1), transparent outside."""
    pixels = np.zeros((SIZE, SIZE, 4), dtype=np.uint8)
    x0, y0, x1, y1 = box or (0, 0, SIZE, SIZE)
    pixels[y0:y1, x0:x1] = rgba
    Image.fromarray(pixels, "RGBA").save(path, format="PNG")


def _folder(tmp_path: Path, layers: list[dict[str, Any]]) -> Path:
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump({"layers": layers}), encoding="utf-8")
    return tmp_path


def _load(folder: Path, size: int = SIZE) -> LayersRenderer:
    return LayersRenderer.load(folder, stages=STAGES, traits=TRAITS, size=size)


def _request(size: int = SIZE, stage: str = "egg", **traits: str | int) -> RenderRequest:
    return RenderRequest(token_id=1, traits=traits, stage=stage, bucket="none", seed=7, size=size)


def _decoded(png: bytes) -> npt.NDArray[np.uint8]:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


@pytest.fixture
def art(tmp_path: Path) -> Path:
    """Red background; a mood square (happy green, sad blue) with a kid variant for happy."""
    _png(tmp_path / "bg.png", (200, 0, 0, 255))
    _png(tmp_path / "happy.png", (0, 200, 0, 255), (4, 4, 8, 8))
    _png(tmp_path / "happy-kid.png", (0, 200, 0, 255), (8, 8, 12, 12))
    _png(tmp_path / "sad.png", (0, 0, 200, 255), (4, 4, 8, 8))
    return _folder(
        tmp_path,
        [
            {"name": "bg", "file": "bg.png"},
            {
                "name": "mood",
                "trait": "mood",
                "files": {"happy": "happy.png", "sad": "sad.png"},
                "default": "sad",
                "stages": {"kid": {"happy": "happy-kid.png"}},
            },
        ],
    )


class TestManifestValidation:
    """Errors at load name the missing file, trait, value or stage."""

    def test_missing_file_is_named(self, art: Path) -> None:
        (art / "sad.png").unlink()
        with pytest.raises(
            RendererSettingsError, match=r"layers\.\[mood\]\.files\.sad.*'sad\.png' not found"
        ):
            _load(art)

    def test_default_without_a_file_names_the_value(self, tmp_path: Path) -> None:
        _png(tmp_path / "a.png", (1, 2, 3, 255))
        folder = _folder(
            tmp_path,
            [{"name": "m", "trait": "mood", "files": {"happy": "a.png"}, "default": "grumpy"}],
        )
        with pytest.raises(
            RendererSettingsError, match=r"layers\.\[m\].*default 'grumpy' has no file"
        ):
            _load(folder)

    def test_stage_variant_of_an_unknown_value(self, tmp_path: Path) -> None:
        _png(tmp_path / "a.png", (1, 2, 3, 255))
        layer = {
            "name": "m",
            "trait": "mood",
            "files": {"happy": "a.png"},
            "stages": {"kid": {"sad": "a.png"}},
        }
        with pytest.raises(RendererSettingsError, match=r"values \['sad'\] have no file"):
            _load(_folder(tmp_path, [layer]))

    def test_unknown_trait_and_stage(self, tmp_path: Path) -> None:
        _png(tmp_path / "a.png", (1, 2, 3, 255))
        with pytest.raises(RendererSettingsError, match=r"\[m\]\.trait.*'colour' is not a trait"):
            _load(_folder(tmp_path, [{"name": "m", "trait": "colour", "files": {"red": "a.png"}}]))
        with pytest.raises(
            RendererSettingsError, match=r"\[m\]\.stages.*\['adult'\] are not stages"
        ):
            _load(_folder(tmp_path, [{"name": "m", "file": "a.png", "stages": {"adult": "a.png"}}]))

    def test_wrong_size_path_escape_and_not_png(self, tmp_path: Path) -> None:
        Image.new("RGBA", (SIZE * 2, SIZE * 2)).save(tmp_path / "big.png")
        with pytest.raises(
            RendererSettingsError, match=r"'big\.png' is 32x32, the collection's image_size is 16"
        ):
            _load(_folder(tmp_path, [{"name": "m", "file": "big.png"}]))
        with pytest.raises(RendererSettingsError, match="relative path inside"):
            _load(_folder(tmp_path, [{"name": "m", "file": "../big.png"}]))
        (tmp_path / "fake.png").write_bytes(b"GIF89a not a png")
        with pytest.raises(RendererSettingsError, match="not a readable PNG"):
            _load(_folder(tmp_path, [{"name": "m", "file": "fake.png"}]))

    def test_absolute_paths_and_links_out_are_refused(self, tmp_path: Path) -> None:
        outside = tmp_path / "outside"
        outside.mkdir()
        _png(outside / "x.png", (1, 2, 3, 255))
        art = tmp_path / "art"
        art.mkdir()
        (art / "link.png").symlink_to(outside / "x.png")
        with pytest.raises(RendererSettingsError, match="relative path inside"):
            _load(_folder(art, [{"name": "m", "file": str(outside / "x.png")}]))
        with pytest.raises(RendererSettingsError, match=r"'link\.png' links outside"):
            _load(_folder(art, [{"name": "m", "file": "link.png"}]))

    def test_a_png_with_a_text_bomb_names_its_key(self, tmp_path: Path) -> None:
        """A zTXt chunk inflating past Pillow's text cap: Pillow raises ValueError."""
        _png(tmp_path / "a.png", (1, 2, 3, 255))
        png = (tmp_path / "a.png").read_bytes()
        body = b"zTXt" + b"k\x00\x00" + zlib.compress(b"a" * (4 << 20))
        chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
        ihdr_end = 8 + 25  # signature, then IHDR (length, type, 13 bytes, CRC)
        (tmp_path / "bomb.png").write_bytes(png[:ihdr_end] + chunk + png[ihdr_end:])
        with pytest.raises(RendererSettingsError, match=r"'bomb\.png' is not a readable PNG"):
            _load(_folder(tmp_path, [{"name": "m", "file": "bomb.png"}]))

    def test_manifest_shape_errors_name_the_key(self, tmp_path: Path) -> None:
        with pytest.raises(RendererSettingsError, match=r"layers\.\[m\]\.blend"):
            _load(_folder(tmp_path, [{"name": "m", "file": "a.png", "blend": "overlay"}]))
        with pytest.raises(RendererSettingsError, match="takes 'files'"):
            _load(_folder(tmp_path, [{"name": "m", "trait": "mood", "file": "a.png"}]))
        with pytest.raises(RendererSettingsError, match="is not a directory"):
            _load(tmp_path / "nowhere")
        (tmp_path / "manifest.yaml").unlink()
        with pytest.raises(RendererSettingsError, match="no layers manifest"):
            _load(tmp_path)

    def test_too_many_layers(self, tmp_path: Path) -> None:
        _png(tmp_path / "a.png", (1, 2, 3, 255))
        layers = [{"name": f"l{i}", "file": "a.png"} for i in range(33)]
        with pytest.raises(RendererSettingsError, match=r"layers.*at most 32"):
            _load(_folder(tmp_path, layers))


class TestCompositing:
    """Trait and stage pick the files; normal/multiply/screen at an opacity, exact integers."""

    def test_trait_default_and_stage_variant(self, art: Path) -> None:
        renderer = _load(art)
        happy = renderer.render_pixels(_request(mood="happy"))
        assert happy[5, 5].tolist() == [0, 200, 0]
        assert happy[0, 0].tolist() == [200, 0, 0]
        unknown = renderer.render_pixels(_request(mood="grumpy"))  # default: sad
        assert unknown[5, 5].tolist() == [0, 0, 200]
        kid = renderer.render_pixels(_request(stage="kid", mood="happy"))
        assert kid[5, 5].tolist() == [200, 0, 0]
        assert kid[9, 9].tolist() == [0, 200, 0]
        # A value with no stage variant keeps its base file at that stage.
        assert renderer.render_pixels(_request(stage="kid", mood="sad"))[5, 5].tolist() == [
            0,
            0,
            200,
        ]

    def test_no_default_draws_nothing(self, tmp_path: Path) -> None:
        _png(tmp_path / "bg.png", (10, 20, 30, 255))
        _png(tmp_path / "hat.png", (250, 250, 250, 255), (0, 0, 4, 4))
        folder = _folder(
            tmp_path,
            [
                {"name": "bg", "file": "bg.png"},
                {"name": "hat", "trait": "fed", "files": {3: "hat.png"}},
            ],
        )
        renderer = _load(folder)
        assert renderer.render_pixels(_request(fed=3))[0, 0].tolist() == [250, 250, 250]
        assert renderer.render_pixels(_request(fed=4))[0, 0].tolist() == [10, 20, 30]
        assert [layer.name for layer, _ in renderer.picks(_request(fed=4))] == ["bg"]

    @pytest.mark.parametrize(
        ("blend", "opacity", "top", "expected"),
        [
            # out + a (c - out): half-opaque white over (100, 200, 40)
            ("normal", 1.0, (255, 255, 255, 128), (177, 227, 147)),
            ("normal", 0.5, (0, 0, 0, 255), (50, 100, 20)),
            ("normal", 0.0, (0, 0, 0, 255), (100, 200, 40)),
            # multiply: out * c / 255
            ("multiply", 1.0, (128, 255, 0, 255), (50, 200, 0)),
            ("multiply", 0.5, (0, 0, 0, 255), (50, 100, 20)),
            # screen: out + c - out c / 255
            ("screen", 1.0, (128, 0, 255, 255), (177, 200, 255)),
            ("screen", 1.0, (0, 0, 0, 255), (100, 200, 40)),
        ],
    )
    def test_blend_and_opacity(
        self,
        tmp_path: Path,
        blend: str,
        opacity: float,
        top: tuple[int, int, int, int],
        expected: tuple[int, int, int],
    ) -> None:
        _png(tmp_path / "base.png", (100, 200, 40, 255))
        _png(tmp_path / "top.png", top)
        folder = _folder(
            tmp_path,
            [
                {"name": "base", "file": "base.png"},
                {"name": "top", "file": "top.png", "blend": blend, "opacity": opacity},
            ],
        )
        got = _load(folder).render_pixels(_request())
        # Within 1 of the exact real-valued blend (8-bit fixed point truncates).
        assert np.abs(got[3, 3].astype(int) - np.array(expected)).max() <= 1, got[3, 3]

    def test_transparent_pixels_change_nothing_and_boxes_are_cropped(self) -> None:
        rgba = np.zeros((SIZE, SIZE, 4), dtype=np.uint8)
        rgba[2:5, 6:9] = (255, 0, 0, 255)
        paint = paint_of(rgba, "normal", 1.0)
        assert paint.box == (slice(2, 5), slice(6, 9))
        assert paint.solid is not None  # opaque over its box: one copy, no k and p kept
        assert paint.solid.shape == (3, 3, 3)
        assert paint.nbytes == 3 * 3 * 3 * 2
        out = np.full((SIZE, SIZE, 3), 77, dtype=np.uint16)
        paint.apply(out)
        assert (out[2:5, 6:9] == [255, 0, 0]).all()
        out[2:5, 6:9] = 77
        assert (out == 77).all()

    def test_translucent_layers_keep_k_and_p(self) -> None:
        rgba = np.zeros((SIZE, SIZE, 4), dtype=np.uint8)
        rgba[2:5, 6:9] = (255, 0, 0, 128)
        paint = paint_of(rgba, "normal", 1.0)
        assert paint.solid is None
        assert paint.k.shape == (3, 3, 3)
        out = np.full((SIZE, SIZE, 3), 100, dtype=np.uint16)
        paint.apply(out)
        # a = round(128 * 256 / 255) = 129: (100 * 127 + 255 * 129) >> 8, (100 * 127) >> 8
        assert out[3, 7].tolist() == [178, 49, 49]

    def test_matches_pillow_alpha_composite(self, tmp_path: Path) -> None:
        """Normal blend of the sample art agrees with Pillow's compositor (within 2 levels)."""
        draw = load_script("draw_layers_art").draw
        folder = tmp_path / "art"
        draw(folder, size=64, stages=STAGES)
        spec = yaml.safe_load((folder / "manifest.yaml").read_text())
        renderer = LayersRenderer.load(folder, stages=STAGES, traits=TRAITS, size=64)
        request = _request(size=64, stage="kid", mood="happy", market="bear")
        picked = {layer.name: paint.file for layer, paint in renderer.picks(request)}
        assert picked == {
            "background": "bg-bear.png",
            "body": "body-kid.png",
            "mood": "mood-happy.png",
            "glow": "glow.png",
            "shadow": "shadow.png",
        }
        normal = [
            layer["name"] for layer in spec["layers"] if layer.get("blend", "normal") == "normal"
        ]
        expected = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
        for name in normal:
            expected = Image.alpha_composite(
                expected, Image.open(folder / picked[name]).convert("RGBA")
            )
        normal_only = renderer.composite(
            [p for layer, p in renderer.picks(request) if layer.name in normal]
        )
        diff = np.abs(normal_only.astype(int) - np.asarray(expected.convert("RGB")).astype(int))
        assert diff.max() <= 2, diff.max()


class TestDeterminism:
    def test_byte_exact_across_loads_and_cache(self, tmp_path: Path) -> None:
        draw = load_script("draw_layers_art").draw
        draw(tmp_path / "a", size=64, stages=STAGES)
        draw(tmp_path / "b", size=64, stages=STAGES)  # the script itself is deterministic
        for name in sorted(p.name for p in (tmp_path / "a").iterdir()):
            assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), (
                name
            )
        first = LayersRenderer.load(tmp_path / "a", stages=STAGES, traits=TRAITS, size=64)
        second = LayersRenderer.load(tmp_path / "b", stages=STAGES, traits=TRAITS, size=64)
        request = _request(size=64, stage="kid", mood="sleepy", market="bull")
        one, again, other = first.render(request), first.render(request), second.render(request)
        assert one.png == again.png == other.png
        assert one.sha256 == other.sha256
        assert (_decoded(one.png) == first.render_pixels(request)).all()
        assert one.provenance["manifest_sha256"] == other.provenance["manifest_sha256"]
        assert one.renderer == "layers"

    def test_provenance_names_every_used_layer_by_hash(self, art: Path) -> None:
        import hashlib

        result = _load(art).render(_request(mood="happy"))
        assert (
            result.provenance["manifest_sha256"]
            == hashlib.sha256((art / "manifest.yaml").read_bytes()).hexdigest()
        )
        assert result.provenance["layers"] == [
            {
                "layer": "bg",
                "file": "bg.png",
                "sha256": hashlib.sha256((art / "bg.png").read_bytes()).hexdigest(),
            },
            {
                "layer": "mood",
                "file": "happy.png",
                "sha256": hashlib.sha256((art / "happy.png").read_bytes()).hexdigest(),
            },
        ]

    def test_a_changed_trait_changes_only_its_layer(self, art: Path) -> None:
        renderer = _load(art)
        happy, sad = (renderer.render(_request(mood=m)) for m in ("happy", "sad"))
        assert happy.sha256 != sad.sha256
        changed = (_decoded(happy.png) != _decoded(sad.png)).any(axis=2)
        assert changed[4:8, 4:8].all()
        assert changed.sum() == 16

    def test_wrong_size_request(self, art: Path) -> None:
        with pytest.raises(RenderInputError, match="layers are 16 px"):
            _load(art).render(_request(size=32))


def test_settings_errors_name_the_renderer_key(art: Path) -> None:
    from regenerator.renderers.registry import RendererSetup, build_renderer

    def setup(**settings: Any) -> RendererSetup:
        return RendererSetup("sample", settings, STAGES, ("none",), TRAITS, SIZE)

    assert build_renderer("layers", setup(dir=str(art))).name == "layers"
    with pytest.raises(
        ConfigError, match=r"^collection sample: renderer\.dir: kind layers needs 'dir'"
    ):
        build_renderer("layers", setup())
    with pytest.raises(ConfigError, match=r"renderer\.colour: not a setting of kind layers"):
        build_renderer("layers", setup(dir=str(art), colour=1))
    (art / "bg.png").unlink()
    with pytest.raises(
        ConfigError,
        match=r"renderer\.dir: .*manifest\.yaml: layers\.\[bg\]\.file: layer file 'bg\.png' not",
    ):
        build_renderer("layers", setup(dir=str(art)))


def test_stack_cache_is_bounded_and_never_changes_an_image(
    art: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    renderer = _load(art)
    one = renderer.stacked([paint for _, paint in renderer.picks(_request(mood="happy"))])
    monkeypatch.setattr("regenerator.renderers.layers.CACHE_BYTES", one.nbytes + 64)
    results = {m: renderer.render(_request(mood=m)) for m in ("happy", "sad", "grumpy")}
    assert len(renderer._cache) == 1  # one stack fits: sad evicted happy; grumpy draws sad
    for mood, result in results.items():
        assert result.png == encode_png(renderer.render_pixels(_request(mood=mood)))
    assert results["grumpy"].png == results["sad"].png
