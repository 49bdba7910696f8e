"""``kind: layers``: layered trait art, a folder of PNG layers stacked as a manifest says.

The manifest (YAML, ``manifest.yaml`` in the folder) lists layers bottom first::

    layers:
      - {name: background, trait: market, files: {bear: bg-bear.png, bull: bg-bull.png},
         default: bull}                           # any other value draws bg-bull.png
      - {name: body, file: body.png, stages: {adult: body-adult.png}}   # per-stage variant
      - {name: mood, trait: mood, files: {happy: happy.png, sleepy: sleepy.png},
         stages: {adult: {happy: happy-adult.png}}, blend: screen, opacity: 0.8}
                                                  # no default: other moods draw nothing

Everything is checked and decoded once when the renderer is built (errors name the missing
file, trait or value); a render only stacks precomputed arrays. Each layer becomes, per pixel
and channel, ``out = (out * k + p) >> 8`` with 16-bit integers: ``normal``, ``multiply`` and
``screen`` at any opacity are all of that form, so compositing is exact integer arithmetic
(byte-identical on every machine) and touches only the layer's non-transparent box.

An image depends only on which files are stacked, and a collection has far fewer stacks than
tokens: the last ``CACHE_BYTES`` worth of encoded stacks are kept, so a fan-out re-renders
each stack once (bench/render.py measures both paths).
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
import yaml
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from regenerator.renderers.base import (
    PNG_COMPRESS_LEVEL,
    PNG_DEFLATE,
    JSONValue,
    RenderInputError,
    RenderRequest,
    RenderResult,
    TraitValue,
    encode_png,
    sha256_hex,
)
from regenerator.renderers.registry import RendererSettingsError, RendererSetup

NAME = "layers"
VERSION = "1"
MANIFEST = "manifest.yaml"
# Bounds on what a folder may make the worker hold: layers stacked, distinct files decoded,
# bytes per file and manifest, and bytes kept once decoded (12 per pixel of a layer's box
# for k and p, 6 for an opaque box).
MAX_LAYERS = 32
MAX_FILES = 512
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_MANIFEST_BYTES = 256 * 1024
MAX_DECODED_BYTES = 384 * 1024 * 1024
# Encoded stacks kept (PNG + pixels): about 75 images of 512 px.
CACHE_BYTES = 64 * 1024 * 1024

U16 = npt.NDArray[np.uint16]
_FileName = Annotated[str, Field(min_length=1, max_length=255)]
_Value = str | int


def _key(value: TraitValue | _Value) -> str:
    """How a trait value looks up its file: its text (YAML keys may be numbers)."""
    return value if isinstance(value, str) else repr(value)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LayerSpec(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    trait: str | None = None  # the trait whose value picks the file; none: one file
    file: _FileName | None = None  # a layer without a trait
    files: dict[_Value, _FileName] | None = Field(default=None, min_length=1)  # value -> file
    default: _Value | None = None  # the value drawn for any value not in files
    # Per-stage variants: stage -> file (no trait) or stage -> {value: file} (a trait).
    stages: dict[str, _FileName | dict[_Value, _FileName]] = {}
    blend: Literal["normal", "multiply", "screen"] = "normal"
    opacity: float = Field(default=1.0, ge=0, le=1)

    @model_validator(mode="after")
    def _shape(self) -> LayerSpec:
        if self.trait is None:
            if self.file is None or self.files is not None or self.default is not None:
                raise ValueError("a layer without 'trait' takes 'file' (not files/default)")
            if any(not isinstance(f, str) for f in self.stages.values()):
                raise ValueError("'stages' of a layer without 'trait' maps a stage to a file")
            return self
        if self.files is None or self.file is not None:
            raise ValueError("a layer with 'trait' takes 'files' (value -> file), not 'file'")
        values = {_key(v) for v in self.files}
        if self.default is not None and _key(self.default) not in values:
            raise ValueError(f"default {self.default!r} has no file in 'files' {sorted(values)}")
        for stage, variant in self.stages.items():
            if not isinstance(variant, dict):
                raise ValueError(f"stages.{stage} of a trait layer maps values to files")
            unknown = sorted(_key(v) for v in variant if _key(v) not in values)
            if unknown:
                raise ValueError(f"stages.{stage}: values {unknown} have no file in 'files'")
        return self


class Manifest(_Model):
    layers: list[LayerSpec] = Field(min_length=1, max_length=MAX_LAYERS)

    @model_validator(mode="after")
    def _unique(self) -> Manifest:
        names = [layer.name for layer in self.layers]
        if len(set(names)) != len(names):
            raise ValueError("layer names must be unique")
        return self


@dataclass(frozen=True, slots=True)
class Stacked:
    """A composite: its pixels (read-only), PNG and the PNG's sha256."""

    pixels: npt.NDArray[np.uint8]
    png: bytes
    sha256: str

    @property
    def nbytes(self) -> int:
        return self.pixels.nbytes + len(self.png)


@dataclass(frozen=True, slots=True)
class Paint:
    """One decoded layer file as ``out[box] = (out[box] * k + p) >> 8`` (k, p: (h, w, 3) u16),
    or, opaque over its whole box, ``out[box] = solid`` (k and p then empty)."""

    file: str
    sha256: str
    box: tuple[slice, slice]
    k: U16
    p: U16
    # p >> 8 where the layer is opaque over its whole box (k == 0): stacking it is one copy.
    solid: U16 | None = None

    @property
    def nbytes(self) -> int:
        return self.k.nbytes + self.p.nbytes + (0 if self.solid is None else self.solid.nbytes)

    def apply(self, out: U16) -> None:
        if self.solid is not None:
            out[self.box] = self.solid
            return
        view = out[self.box]
        np.multiply(view, self.k, out=view)
        np.add(view, self.p, out=view)
        np.right_shift(view, 8, out=view)


def paint_of(
    rgba: npt.NDArray[np.uint8], blend: str, opacity: float, *, file: str = "", sha256: str = ""
) -> Paint:
    """The (k, p) form of an (H, W, 4) uint8 layer, cropped to where it changes anything."""
    a = np.rint(rgba[..., 3:4].astype(np.float64) * (opacity * 256 / 255)).astype(np.uint32)
    c = rgba[..., :3].astype(np.uint32)
    if blend == "normal":  # out + a (c - out)
        k, p = 256 - a, c * a
    elif blend == "multiply":  # out + a (out c / 255 - out)
        k, p = 256 - a + (a * c + 127) // 255, np.zeros_like(c)
    else:  # screen: out + a (c - out c / 255)
        k, p = 256 - (a * c + 127) // 255, c * a
    k, p = np.broadcast_to(k, c.shape), np.broadcast_to(p, c.shape)
    changes = ((k != 256) | (p != 0)).any(axis=2)
    rows, cols = np.flatnonzero(changes.any(axis=1)), np.flatnonzero(changes.any(axis=0))
    if rows.size == 0:
        box = (slice(0, 0), slice(0, 0))
    else:
        box = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
    k16 = np.ascontiguousarray(k[box], dtype=np.uint16)
    p16 = np.ascontiguousarray(p[box], dtype=np.uint16)
    solid = None
    if not k16.any():
        solid = np.right_shift(p16, 8)
        k16 = p16 = np.zeros((0, 0, 3), dtype=np.uint16)
    for array in (k16, p16, solid):
        if array is not None:
            array.flags.writeable = False
    return Paint(file, sha256, box, k16, p16, solid)


@dataclass(frozen=True, slots=True)
class Layer:
    name: str
    trait: str | None
    blend: str
    opacity: float
    files: Mapping[str, Paint]  # trait value (or "" without a trait) -> paint
    default: str | None
    stages: Mapping[str, Mapping[str, Paint]]  # stage -> value -> paint

    def pick(self, request: RenderRequest) -> Paint | None:
        if self.trait is None:
            value: str | None = ""
        else:
            raw = request.traits.get(self.trait)
            value = None if raw is None else _key(raw)
            if value not in self.files:
                value = self.default
        if value is None:
            return None
        return self.stages.get(request.stage, {}).get(value, self.files[value])


def _error(key: str, reason: str) -> RendererSettingsError:
    return RendererSettingsError(key, reason)


class _Loader:
    """Reads and decodes a layers folder once; every error names the manifest key."""

    def __init__(self, folder: Path, manifest: Path, size: int) -> None:
        self.folder, self.manifest, self.size = folder, manifest, size
        self.root = folder.resolve()
        self.paints: dict[tuple[str, str, float], Paint] = {}
        self.hashes: dict[str, str] = {}
        self.decoded = 0

    def key(self, where: str) -> str:
        return f"dir: {self.manifest}: {where}"

    def paint(self, name: str, where: str, blend: str, opacity: float) -> Paint:
        cached = self.paints.get((name, blend, opacity))
        if cached is not None:
            return cached
        path = self.folder / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise _error(self.key(where), f"{name!r} must be a relative path inside {self.folder}")
        if not path.is_file():
            raise _error(self.key(where), f"layer file {name!r} not found in {self.folder}")
        if not path.resolve().is_relative_to(self.root):
            raise _error(self.key(where), f"{name!r} links outside {self.folder}")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise _error(self.key(where), f"{name!r} is over {MAX_FILE_BYTES} bytes")
        if len({n for n, _, _ in self.paints} | {name}) > MAX_FILES:
            raise _error(self.key(where), f"more than {MAX_FILES} distinct layer files")
        data = path.read_bytes()
        try:
            with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
                if image.size != (self.size, self.size):  # before decoding: no pixel bombs
                    raise _error(
                        self.key(where),
                        f"{name!r} is {image.size[0]}x{image.size[1]}, the collection's "
                        f"image_size is {self.size}",
                    )
                rgba = np.asarray(image.convert("RGBA"), dtype=np.uint8)
        except RendererSettingsError:
            raise
        except Exception as exc:
            # Pillow raises OSError, ValueError (an oversized text or ICC chunk), SyntaxError,
            # EOFError...: any of them is an unreadable file.
            raise _error(self.key(where), f"{name!r} is not a readable PNG: {exc}") from None
        digest = sha256_hex(data)
        paint = paint_of(rgba, blend, opacity, file=name, sha256=digest)
        self.decoded += paint.nbytes
        if self.decoded > MAX_DECODED_BYTES:
            raise _error(self.key(where), f"the layers take over {MAX_DECODED_BYTES} bytes")
        self.paints[(name, blend, opacity)] = paint
        self.hashes[name] = digest
        return paint

    def layer(self, spec: LayerSpec, stages: Sequence[str], traits: Sequence[str]) -> Layer:
        at = f"layers.[{spec.name}]"
        if spec.trait is not None and spec.trait not in traits:
            raise _error(
                self.key(f"{at}.trait"), f"{spec.trait!r} is not a trait (traits: {list(traits)})"
            )
        unknown = sorted(set(spec.stages) - set(stages))
        if unknown:
            raise _error(self.key(f"{at}.stages"), f"{unknown} are not stages ({list(stages)})")

        def load(name: str, where: str) -> Paint:
            return self.paint(name, f"{at}.{where}", spec.blend, spec.opacity)

        variants: dict[str, dict[str, Paint]] = {}
        if spec.trait is None:
            assert spec.file is not None  # LayerSpec._shape
            files = {"": load(spec.file, "file")}
            for stage, name in spec.stages.items():
                assert isinstance(name, str)
                variants[stage] = {"": load(name, f"stages.{stage}")}
        else:
            assert spec.files is not None
            files = {_key(v): load(n, f"files.{_key(v)}") for v, n in spec.files.items()}
            for stage, variant in spec.stages.items():
                assert isinstance(variant, dict)
                variants[stage] = {
                    _key(v): load(n, f"stages.{stage}.{_key(v)}") for v, n in variant.items()
                }
        default = None if spec.default is None else _key(spec.default)
        return Layer(spec.name, spec.trait, spec.blend, spec.opacity, files, default, variants)


def read_manifest(path: Path) -> tuple[Manifest, bytes]:
    """The manifest at ``path`` and its bytes; RendererSettingsError naming the key."""
    if not path.is_file():
        raise _error("dir", f"no layers manifest at {path}")
    data = path.read_bytes()
    if len(data) > MAX_MANIFEST_BYTES:
        raise _error(f"dir: {path}", f"the manifest is over {MAX_MANIFEST_BYTES} bytes")
    try:
        raw = yaml.safe_load(data)
        return Manifest.model_validate(raw), data
    except yaml.YAMLError as exc:
        raise _error(f"dir: {path}", f"not YAML: {exc}") from None
    except ValidationError as exc:
        error = exc.errors()[0]
        names = [layer.get("name") if isinstance(layer, dict) else None for layer in _layers(raw)]
        loc = [
            f"[{names[part]}]" if isinstance(part, int) and i == 1 and names[part] else str(part)
            for i, part in enumerate(error["loc"])
        ]
        raise _error(f"dir: {path}: {'.'.join(loc)}", error["msg"]) from None


def _layers(raw: Any) -> list[Any]:
    layers = raw.get("layers") if isinstance(raw, dict) else None
    return layers if isinstance(layers, list) else []


class LayersRenderer:
    """Stacks the layers a token's traits and stage pick; built once per worker."""

    name = NAME
    version = VERSION

    def __init__(
        self, layers: Sequence[Layer], *, size: int, manifest_sha256: str, folder: str
    ) -> None:
        self.layers = tuple(layers)
        self.size = size
        self.manifest_sha256 = manifest_sha256
        self.folder = folder
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[int, ...], Stacked] = OrderedDict()
        self._cached_bytes = 0

    @classmethod
    def load(
        cls,
        folder: str | Path,
        *,
        stages: Sequence[str],
        traits: Sequence[str],
        size: int,
        manifest: str = MANIFEST,
    ) -> LayersRenderer:
        """Check and decode ``folder``; RendererSettingsError naming the file, trait or value."""
        folder = Path(folder)
        if not folder.is_dir():
            raise _error("dir", f"{str(folder)!r} is not a directory")
        path = folder / manifest
        spec, data = read_manifest(path)
        loader = _Loader(folder, path, size)
        layers = [loader.layer(layer, stages, traits) for layer in spec.layers]
        return cls(layers, size=size, manifest_sha256=sha256_hex(data), folder=str(folder))

    @classmethod
    def from_setup(cls, setup: RendererSetup) -> LayersRenderer:
        """The renderer of ``renderer: {kind: layers, dir: FOLDER, manifest: manifest.yaml}``
        (``dir`` relative to the working directory, as ``model_dir`` is)."""
        unknown = sorted(set(setup.settings) - {"dir", "manifest"})
        if unknown:
            raise _error(unknown[0], "not a setting of kind layers (its settings: dir, manifest)")
        folder, manifest = setup.settings.get("dir"), setup.settings.get("manifest", MANIFEST)
        if not isinstance(folder, str) or not folder:
            raise _error("dir", "kind layers needs 'dir', the folder of layers and manifest")
        if not isinstance(manifest, str) or Path(manifest).name != manifest:
            raise _error("manifest", f"{manifest!r} must be a file name inside 'dir'")
        return cls.load(
            folder,
            stages=setup.stages,
            traits=setup.traits,
            size=setup.image_size,
            manifest=manifest,
        )

    def picks(self, request: RenderRequest) -> list[tuple[Layer, Paint]]:
        """The layer files ``request`` stacks, bottom first."""
        chosen = [(layer, layer.pick(request)) for layer in self.layers]
        return [(layer, paint) for layer, paint in chosen if paint is not None]

    def composite(self, paints: Sequence[Paint]) -> npt.NDArray[np.uint8]:
        """``paints`` stacked bottom first over black, as (N, N, 3) uint8."""
        out: U16 = np.zeros((self.size, self.size, 3), dtype=np.uint16)
        for paint in paints:
            paint.apply(out)
        return out.astype(np.uint8)

    def stacked(self, paints: Sequence[Paint]) -> Stacked:
        """The composite of ``paints`` and its PNG, from the cache when it holds them."""
        key = tuple(id(paint) for paint in paints)  # paints live as long as the renderer
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        pixels = self.composite(paints)
        pixels.flags.writeable = False
        png = encode_png(pixels)
        made = Stacked(pixels, png, sha256_hex(png))
        with self._lock:
            if key in self._cache:  # another thread composited it meanwhile
                return self._cache[key]
            self._cache[key] = made
            self._cached_bytes += made.nbytes
            while self._cached_bytes > CACHE_BYTES and len(self._cache) > 1:
                _, old = self._cache.popitem(last=False)
                self._cached_bytes -= old.nbytes
        return made

    def render_pixels(self, request: RenderRequest) -> npt.NDArray[np.uint8]:
        """The (N, N, 3) uint8 composite, always computed afresh. Raises RenderInputError."""
        self._check(request)
        return self.composite([paint for _, paint in self.picks(request)])

    def _check(self, request: RenderRequest) -> None:
        if request.size != self.size:
            raise RenderInputError(f"layers are {self.size} px; the request asks {request.size}")

    def render(self, request: RenderRequest) -> RenderResult:
        """Render one request to PNG. Blocks (CPU); raises RenderInputError."""
        self._check(request)
        picks = self.picks(request)
        image = self.stacked([paint for _, paint in picks])
        used: list[JSONValue] = [
            {"layer": layer.name, "file": paint.file, "sha256": paint.sha256}
            for layer, paint in picks
        ]
        provenance: dict[str, JSONValue] = {
            "seed": request.seed,
            "token_id": request.token_id,
            "stage": request.stage,
            "bucket": request.bucket,
            "size": request.size,
            "request_sha256": request.fingerprint(),
            "manifest_sha256": self.manifest_sha256,
            "layers": used,
            "png": {"filter": "up", "deflate": PNG_DEFLATE, "level": PNG_COMPRESS_LEVEL},
            "numpy": np.__version__,
        }
        return RenderResult(
            png=image.png,
            sha256=image.sha256,
            width=self.size,
            height=self.size,
            renderer=self.name,
            renderer_version=self.version,
            provenance=MappingProxyType(provenance),
            pixels=image.pixels,
        )

    def render_batch(self, requests: Sequence[RenderRequest]) -> list[RenderResult]:
        """One ``render`` per request, in order."""
        return [self.render(request) for request in requests]
