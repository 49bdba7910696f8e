"""The renderer contract: one ``Renderer`` Protocol, its request and result, shared helpers.
A public interface for plugins (docs/renderers.md): change it only compatibly.

A renderer turns a token's state (traits, stage, feed bucket, seed, prompt) into PNG bytes plus
the provenance needed to explain, and where possible reproduce, the image. Rendering is
blocking and CPU/GPU-bound: async callers run it in a thread (``asyncio.to_thread``) or a
process pool, never on the event loop.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol, TypeAlias, runtime_checkable

import isal
import numpy as np
import numpy.typing as npt
from isal import isal_zlib

from dnft.collection import MAX_SEED
from dnft.errors import DnftError

TraitValue: TypeAlias = str | int | float
ParamValue: TypeAlias = str | int | float | bool
JSONValue: TypeAlias = "str | int | float | bool | list[JSONValue] | dict[str, JSONValue] | None"

# Seeds fit in a signed 64-bit integer (torch.Generator.manual_seed, Postgres bigint).
MIN_SIZE = 16
MAX_SIZE = 4096
# PNG deflate: ISA-L (igzip) at level 1 compresses a 512 px image in 0.4 ms where zlib level 1
# takes 2.2 ms, to files as small (bench/render.py): PNG encoding was half of a procedural
# render. ISA-L levels are 0 to 3. Its output is the same on every x86-64 CPU with SSE4.2 (its
# SIMD kernels agree above that line), but may differ on other architectures or versions:
# provenance names the library, and verification falls back to comparing decoded pixels.
PNG_COMPRESS_LEVEL = 1
PNG_MAX_LEVEL = 3
PNG_DEFLATE = f"isa-l {isal.__version__}"


class RenderError(DnftError, RuntimeError):
    """A render failed (bad input for this renderer, or the backend itself failed)."""


class RenderInputError(RenderError, ValueError):
    """The request cannot be rendered by this renderer (unknown stage, bad size, bad params)."""


class ModelLoadError(RenderError):
    """A model directory is missing, incomplete or corrupt; raised at load, not at render."""


def _check_keys(mapping: Mapping[str, object], what: str) -> None:
    for key in mapping:
        if not isinstance(key, str):
            raise RenderInputError(f"{what} keys must be strings, got {key!r}")


@dataclass(frozen=True, slots=True)
class RenderRequest:
    """Everything a renderer may look at; equal requests render equal images.

    ``prompt`` must already be sanitised (``dnft.sanitize.for_prompt``): renderers use it
    as is. ``size`` is the side of the square image in pixels. ``params`` are renderer-specific
    knobs (diffusion: ``steps``, ``guidance_scale``, ``strength``, ``mode``...). ``base_image``
    is PNG bytes for image-to-image renderers; others ignore it.

    Mappings are copied into read-only views on construction. Raises RenderInputError for
    values out of range; a request is therefore always well-formed once it exists.
    """

    token_id: int
    traits: Mapping[str, TraitValue]
    stage: str
    bucket: str
    seed: int
    prompt: str = ""
    size: int = 512
    params: Mapping[str, ParamValue] = field(default_factory=dict)
    base_image: bytes | None = None

    def __post_init__(self) -> None:
        if self.token_id < 0:
            raise RenderInputError(f"token_id must be >= 0, got {self.token_id}")
        if not 0 <= self.seed <= MAX_SEED:
            raise RenderInputError(f"seed must be in [0, 2**63), got {self.seed}")
        if not MIN_SIZE <= self.size <= MAX_SIZE:
            raise RenderInputError(f"size must be in [{MIN_SIZE}, {MAX_SIZE}], got {self.size}")
        _check_keys(self.traits, "traits")
        _check_keys(self.params, "params")
        for key, value in self.traits.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise RenderInputError(f"trait {key!r} is not a finite number: {value!r}")
            if not isinstance(value, str | int | float):
                raise RenderInputError(f"trait {key!r} must be str, int or float: {value!r}")
        # Copies, so a caller mutating its dict cannot change a request (or a cache key) later.
        object.__setattr__(self, "traits", MappingProxyType(dict(self.traits)))
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def __hash__(self) -> int:
        # The generated hash would fail on the mapping views; equal requests share a fingerprint.
        return hash(self.fingerprint())

    def fingerprint(self) -> str:
        """sha256 hex of the canonical JSON of the request (the base image by its sha256)."""
        doc = {
            "token_id": self.token_id,
            "traits": dict(sorted(self.traits.items())),
            "stage": self.stage,
            "bucket": self.bucket,
            "seed": self.seed,
            "prompt": self.prompt,
            "size": self.size,
            "params": dict(sorted(self.params.items())),
            "base_image": None if self.base_image is None else sha256_hex(self.base_image),
        }
        return sha256_hex(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())


@dataclass(frozen=True, slots=True)
class RenderResult:
    """A rendered PNG, its sha256 (hex) and how it was made.

    ``provenance`` is JSON-serialisable: seed, prompt, renderer settings, library versions and
    whatever the renderer needs to explain the image (a model directory hash, thread count...).
    """

    png: bytes
    sha256: str
    width: int
    height: int
    renderer: str
    renderer_version: str
    provenance: Mapping[str, JSONValue]
    # The (H, W, 3) pixels the PNG encodes, where the renderer has them: checks on the image
    # (guardrails) need not decode the PNG again. Not part of the result's identity.
    pixels: npt.NDArray[np.uint8] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def build(
        cls,
        png: bytes,
        *,
        width: int,
        height: int,
        renderer: str,
        renderer_version: str,
        provenance: Mapping[str, JSONValue],
        pixels: npt.NDArray[np.uint8] | None = None,
    ) -> RenderResult:
        """A result with ``sha256`` computed from ``png``."""
        return cls(
            png=png,
            sha256=sha256_hex(png),
            width=width,
            height=height,
            renderer=renderer,
            renderer_version=renderer_version,
            provenance=MappingProxyType(dict(provenance)),
            pixels=pixels,
        )


@runtime_checkable
class Renderer(Protocol):
    """Renders token states to PNG.

    ``render`` and ``render_batch`` block (CPU or GPU bound): call them from a worker thread or
    process. They raise RenderInputError for requests this renderer cannot draw and RenderError
    for backend failures; they never return a partial batch. ``render_batch`` returns results in
    request order and may be faster than one ``render`` per request (one pipeline call).
    """

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    def render(self, request: RenderRequest) -> RenderResult: ...

    def render_batch(self, requests: Sequence[RenderRequest]) -> list[RenderResult]: ...


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    )


def encode_png(rgb: npt.NDArray[np.uint8], level: int = PNG_COMPRESS_LEVEL) -> bytes:
    """Encode an (H, W, 3) uint8 array as an 8-bit RGB PNG: IHDR, IDAT, IEND, nothing else.

    Every row uses the "Up" filter, deflated by ISA-L at ``level`` (0 to 3): the bytes depend
    only on the pixels, the level and the deflate implementation (no timestamps, no text
    chunks). Several times faster than Pillow (bench/render.py). Does not block on I/O.
    """
    if not 0 <= level <= PNG_MAX_LEVEL:
        raise ValueError(f"PNG level is an ISA-L level, 0 to {PNG_MAX_LEVEL}, not {level}")
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 array, got {rgb.shape} {rgb.dtype}")
    height, width = int(rgb.shape[0]), int(rgb.shape[1])
    rows = rgb.reshape(height, width * 3)
    filtered = np.empty((height, width * 3 + 1), dtype=np.uint8)
    filtered[:, 0] = 2  # filter type Up: each byte minus the byte above it, modulo 256
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # uint8 arithmetic wraps: mod 256
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _png_chunk(b"IHDR", header),
            _png_chunk(b"IDAT", isal_zlib.compress(filtered.tobytes(), level)),
            _png_chunk(b"IEND", b""),
        )
    )
