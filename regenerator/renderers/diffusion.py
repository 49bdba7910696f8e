# Over 450 lines: loading, checking and running one diffusers pipeline share its state.
"""The diffusion renderer: Stable Diffusion text-to-image, and image-to-image over a base image.

Image-to-image over the procedural render of the same token keeps a token recognisable as it
evolves: the prompt restyles a composition that the token's state already fixed. Production
renders run on GPU workers (CUDA, fp16); CPU and fp32 work for tests and small models
(FACTS.md, "Diffusion": a 512 px SD render takes seconds per step on CPU).

Everything that can be wrong with a model directory is found by ``DiffusionRenderer.load`` at
start-up, not by the first render: a missing directory, a component without its config or
weights, a truncated safetensors file, a pipeline diffusers cannot build. The directory's hash
goes into each render's provenance, with the seed, thread count and library versions: the CPU
result depends on the thread count and the batch size, so verifying a render needs the same
settings and a small tolerance (FACTS.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import os
import struct
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from dnft.errors import DependencyError, MissingDependencyError
from regenerator.renderers.base import (
    JSONValue,
    ModelLoadError,
    ParamValue,
    Renderer,
    RenderError,
    RenderInputError,
    RenderRequest,
    RenderResult,
    encode_png,
    sha256_hex,
)

NAME = "diffusion"
# Bump whenever this module would turn the same request and model into a different image.
VERSION = "1"
TXT2IMG = "txt2img"
IMG2IMG = "img2img"
DEFAULT_PARAMS: Mapping[str, ParamValue] = {
    "steps": 20,
    "guidance_scale": 7.5,
    "strength": 0.6,
    "negative_prompt": "",
}
PARAM_KEYS = frozenset({"mode", *DEFAULT_PARAMS})
_CHUNK = 1 << 20
# Components ``load`` asks diffusers not to load, so their files need not be there.
_NOT_LOADED = frozenset({"safety_checker"})
_LIBRARIES = ("torch", "diffusers", "transformers", "safetensors", "numpy", "pillow")


@dataclass(frozen=True, slots=True)
class _Plan:
    """A validated request with every parameter resolved."""

    request: RenderRequest
    mode: str
    steps: int
    guidance_scale: float
    strength: float
    negative_prompt: str
    base: Image.Image | None
    base_sha256: str | None

    @property
    def group(self) -> tuple[object, ...]:
        """Requests with equal groups run as one pipeline call."""
        strength = self.strength if self.mode == IMG2IMG else None
        return (
            self.mode,
            self.request.size,
            self.steps,
            self.guidance_scale,
            strength,
            self.negative_prompt,
        )


def model_dir_sha256(model_dir: Path) -> tuple[str, dict[str, str]]:
    """sha256 over a model directory, and the sha256 of each file in it.

    Files are taken in sorted order of their relative POSIX paths; each contributes its path,
    size and own sha256 (the same per-file hash the Hugging Face hub shows for LFS files).
    Paths with a part starting with '.' (hub caches, lock files) are left out. Streams the
    files in 1 MiB chunks; blocks on disk I/O (seconds for a multi-GB model).
    """
    files: dict[str, str] = {}
    outer = hashlib.sha256()
    for path in sorted(model_dir.rglob("*"), key=lambda p: p.relative_to(model_dir).as_posix()):
        relative = path.relative_to(model_dir)
        if not path.is_file() or any(part.startswith(".") for part in relative.parts):
            continue
        inner = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                inner.update(chunk)
        name = relative.as_posix()
        files[name] = inner.hexdigest()
        outer.update(name.encode() + b"\0" + struct.pack(">Q", path.stat().st_size))
        outer.update(inner.digest())
    return outer.hexdigest(), files


def check_safetensors(path: Path) -> None:
    """Raise ModelLoadError unless ``path`` is a complete safetensors file.

    Reads only the header: an 8-byte little-endian length, a JSON table of tensors with their
    byte ranges; the file must be exactly as long as the table says (a truncated download or
    copy is the common failure).
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            prefix = fh.read(8)
            if len(prefix) < 8:
                raise ModelLoadError(f"{path} is truncated: {size} bytes, no safetensors header")
            (header_len,) = struct.unpack("<Q", prefix)
            if header_len > size - 8:
                raise ModelLoadError(
                    f"{path} is truncated: header of {header_len} bytes, file of {size}"
                )
            header = json.loads(fh.read(header_len))
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{path} is not a safetensors file: bad header ({exc})") from exc
    if not isinstance(header, dict):
        raise ModelLoadError(f"{path} is not a safetensors file: header is not a table")
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2):
            raise ModelLoadError(f"{path}: tensor {name!r} has no data_offsets")
        end = max(end, int(offsets[1]))
    expected = 8 + header_len + end
    if size != expected:
        raise ModelLoadError(f"{path} is truncated or padded: {size} bytes, header says {expected}")


def _component_files(kind: str) -> tuple[tuple[str, ...], ...]:
    """Files a component directory needs: each inner tuple is a set of alternatives."""
    if kind.endswith("Scheduler"):
        return (("scheduler_config.json",),)
    if "Tokenizer" in kind:
        return (("tokenizer.json", "vocab.json", "tokenizer.model"),)
    if kind.endswith(("FeatureExtractor", "ImageProcessor")):
        return (("preprocessor_config.json",),)
    return (("config.json",),)


def check_model_dir(model_dir: Path) -> dict[str, str]:
    """Check a diffusers pipeline directory without loading it; return its components' classes.

    Raises ModelLoadError naming the directory and the first missing or damaged file.
    """
    if not model_dir.is_dir():
        raise ModelLoadError(f"model directory {model_dir} does not exist (or is not a directory)")
    index_path = model_dir / "model_index.json"
    try:
        index = json.loads(index_path.read_text())
    except FileNotFoundError:
        raise ModelLoadError(
            f"{index_path} is missing: {model_dir} is not a diffusers pipeline directory"
        ) from None
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{index_path} is unreadable or not JSON: {exc}") from exc
    if not isinstance(index, dict):
        raise ModelLoadError(f"{index_path} is not a JSON object")
    components: dict[str, str] = {}
    for name, spec in index.items():
        if name.startswith("_") or not isinstance(spec, list) or len(spec) != 2 or None in spec:
            continue
        if name in _NOT_LOADED:
            continue
        kind = str(spec[1])
        components[name] = kind
        directory = model_dir / name
        if not directory.is_dir():
            raise ModelLoadError(f"{model_dir}: component {name} ({kind}) has no directory")
        for alternatives in _component_files(kind):
            if not any((directory / f).is_file() for f in alternatives):
                raise ModelLoadError(
                    f"{model_dir}: {name}/{alternatives[0]} is missing ({kind})"
                    + (f"; any of {list(alternatives)} would do" if len(alternatives) > 1 else "")
                )
        if (directory / "config.json").is_file():
            weights = [p for p in directory.iterdir() if p.suffix in (".safetensors", ".bin")]
            if not weights:
                raise ModelLoadError(
                    f"{model_dir}: {name} ({kind}) has no weights (*.safetensors or *.bin)"
                )
    for path in sorted(model_dir.rglob("*.safetensors")):
        check_safetensors(path)
    return components


def _library_versions() -> dict[str, JSONValue]:
    versions: dict[str, JSONValue] = {}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _resolve_dtype(dtype: str | torch.dtype | None, device: str) -> torch.dtype:
    if dtype is None:
        return torch.float16 if device.startswith("cuda") else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, dtype, None)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"unknown torch dtype {dtype!r}")
    return resolved


class DiffusionRenderer:
    """Stable Diffusion txt2img / img2img through diffusers; build it with ``load``.

    Request params (``DEFAULT_PARAMS`` fill the gaps; other keys are a RenderInputError):
    ``mode`` (``txt2img`` or ``img2img``; default img2img when there is a base image or a base
    renderer), ``steps``, ``guidance_scale``, ``strength`` (img2img), ``negative_prompt``.
    An img2img request without ``base_image`` gets one from the ``base`` renderer, rendered
    from the same request (so the token's procedural identity shows through).

    ``render`` and ``render_batch`` block for the whole pipeline run (call them from a worker
    thread); one call runs at a time per renderer (diffusers schedulers keep state). They raise
    RenderInputError before any pipeline work when a request is invalid, RenderError when the
    pipeline fails.
    """

    name = NAME
    version = VERSION

    def __init__(
        self,
        txt2img: Any,
        img2img: Any,
        *,
        model_dir: Path,
        model_sha256: str,
        device: str,
        dtype: torch.dtype,
        threads: int,
        lora_sha256: str | None = None,
        lora: Path | None = None,
        base: Renderer | None = None,
        max_batch: int = 8,
        defaults: Mapping[str, ParamValue] = DEFAULT_PARAMS,
    ) -> None:
        self.txt2img = txt2img
        self.img2img = img2img
        self.model_dir = model_dir
        self.model_sha256 = model_sha256
        self.device = device
        self.dtype = dtype
        self.threads = threads
        self.lora_sha256 = lora_sha256
        self.lora = lora
        self.base = base
        self.max_batch = max_batch
        unknown = set(defaults) - PARAM_KEYS
        if unknown:
            raise ValueError(f"unknown diffusion params {sorted(unknown)} in defaults")
        self.defaults = {**DEFAULT_PARAMS, **defaults}
        self._lock = threading.Lock()
        self._versions = _library_versions()
        self._vae_scale = int(getattr(txt2img, "vae_scale_factor", 8))

    @classmethod
    def load(
        cls,
        model_dir: Path | str,
        *,
        device: str | None = None,
        dtype: str | torch.dtype | None = None,
        lora: Path | str | None = None,
        threads: int | None = None,
        base: Renderer | None = None,
        max_batch: int = 8,
        defaults: Mapping[str, ParamValue] = DEFAULT_PARAMS,
    ) -> DiffusionRenderer:
        """Check, hash and load a local diffusers Stable Diffusion directory. Blocks (seconds).

        ``device`` defaults to CUDA when available, else CPU; ``dtype`` to float16 on CUDA and
        float32 elsewhere. ``threads`` is torch's intra-op thread count for every render
        (default: the CPUs this process may use). Never touches the network
        (``local_files_only``). Raises ModelLoadError naming the directory and what is wrong,
        MissingDependencyError for a LoRA without ``peft``, ValueError for a bad dtype.
        """
        import diffusers

        # Typed as Any: diffusers' pipeline classes are only partly annotated.
        txt2img_class: Any = diffusers.StableDiffusionPipeline
        img2img_class: Any = diffusers.StableDiffusionImg2ImgPipeline
        directory = Path(model_dir)
        check_model_dir(directory)
        model_sha256, _ = model_dir_sha256(directory)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        torch_dtype = _resolve_dtype(dtype, device)
        threads = threads or len(os.sched_getaffinity(0))
        torch.set_num_threads(threads)
        try:
            # diffusers 0.42 takes ``dtype=``; ``torch_dtype=`` is deprecated.
            txt2img = txt2img_class.from_pretrained(
                str(directory),
                local_files_only=True,
                dtype=torch_dtype,
                safety_checker=None,
                requires_safety_checker=False,
            ).to(device)
        except Exception as exc:
            raise ModelLoadError(
                f"cannot load a Stable Diffusion pipeline from {directory}: {exc}"
            ) from exc
        lora_sha256 = None
        if lora is not None:
            lora_sha256 = _load_lora(txt2img, Path(lora))
        txt2img.set_progress_bar_config(disable=True)
        # The same modules in a second pipeline class: no second copy of the weights. (Not
        # ``from_pipe``: without its own ``dtype=`` it casts the shared modules to float32.)
        img2img = img2img_class(**txt2img.components, requires_safety_checker=False)
        img2img.set_progress_bar_config(disable=True)
        return cls(
            txt2img,
            img2img,
            model_dir=directory,
            model_sha256=model_sha256,
            device=device,
            dtype=torch_dtype,
            threads=threads,
            lora_sha256=lora_sha256,
            lora=None if lora is None else Path(lora),
            base=base,
            max_batch=max_batch,
            defaults=defaults,
        )

    def render(self, request: RenderRequest) -> RenderResult:
        """Render one request. Blocks; raises RenderInputError or RenderError."""
        return self.render_batch([request])[0]

    def render_batch(self, requests: Sequence[RenderRequest]) -> list[RenderResult]:
        """Render requests in order; those with equal size and params share a pipeline call
        (a list of prompts and one generator per request), up to ``max_batch`` at a time.
        Blocks; raises RenderInputError (before any rendering) or RenderError."""
        plans = [self._plan(request) for request in requests]
        groups: dict[tuple[object, ...], list[int]] = {}
        for i, plan in enumerate(plans):
            groups.setdefault(plan.group, []).append(i)
        results: list[RenderResult | None] = [None] * len(plans)
        for indices in groups.values():
            for start in range(0, len(indices), self.max_batch):
                chunk = indices[start : start + self.max_batch]
                images = self._run([plans[i] for i in chunk])
                for i, pixels in zip(chunk, images, strict=True):
                    results[i] = self._result(plans[i], pixels, len(chunk))
        return [r for r in results if r is not None]

    def _param(self, request: RenderRequest, key: str) -> ParamValue:
        return request.params.get(key, self.defaults[key])

    def _plan(self, request: RenderRequest) -> _Plan:
        unknown = set(request.params) - PARAM_KEYS
        if unknown:
            raise RenderInputError(
                f"unknown diffusion params {sorted(unknown)}; known: {sorted(PARAM_KEYS)}"
            )
        if request.size % self._vae_scale:
            raise RenderInputError(f"size {request.size} is not a multiple of {self._vae_scale}")
        default_mode = IMG2IMG if request.base_image is not None or self.base else TXT2IMG
        mode = request.params.get("mode", self.defaults.get("mode", default_mode))
        if mode not in (TXT2IMG, IMG2IMG):
            raise RenderInputError(f"mode must be {TXT2IMG!r} or {IMG2IMG!r}, got {mode!r}")
        steps, guidance, strength = (
            self._param(request, "steps"),
            self._param(request, "guidance_scale"),
            self._param(request, "strength"),
        )
        negative = self._param(request, "negative_prompt")
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 200:
            raise RenderInputError(f"steps must be an integer in [1, 200], got {steps!r}")
        if isinstance(guidance, bool) or not isinstance(guidance, int | float):
            raise RenderInputError(f"guidance_scale must be a number, got {guidance!r}")
        if isinstance(strength, bool) or not isinstance(strength, int | float):
            raise RenderInputError(f"strength must be a number, got {strength!r}")
        if not isinstance(negative, str):
            raise RenderInputError(f"negative_prompt must be a string, got {negative!r}")
        base, base_sha256 = None, None
        if mode == IMG2IMG:
            if not 0 < strength <= 1 or int(steps * strength) < 1:
                raise RenderInputError(
                    f"img2img needs 0 < strength <= 1 and steps * strength >= 1, "
                    f"got strength {strength} with {steps} steps"
                )
            base, base_sha256 = self._base_image(request)
        return _Plan(
            request, str(mode), steps, float(guidance), float(strength), negative, base, base_sha256
        )

    def _base_image(self, request: RenderRequest) -> tuple[Image.Image, str]:
        png = request.base_image
        if png is None:
            if self.base is None:
                raise RenderInputError("img2img needs a base_image (or a base renderer)")
            png = self.base.render(replace(request, params={})).png
        try:
            with Image.open(io.BytesIO(png)) as opened:
                image = opened.convert("RGB")
        except Exception as exc:
            raise RenderInputError(f"base_image is not a readable image: {exc}") from exc
        if image.size != (request.size, request.size):
            image = image.resize((request.size, request.size), Image.Resampling.LANCZOS)
        return image, sha256_hex(png)

    @contextlib.contextmanager
    def _session(self) -> Iterator[None]:
        with self._lock, torch.inference_mode():
            # torch's OpenMP thread count is per calling thread: set it in the thread that
            # renders, on every call, or a worker thread silently uses another count.
            torch.set_num_threads(self.threads)
            yield

    def _run(self, plans: Sequence[_Plan]) -> list[np.ndarray[Any, np.dtype[np.uint8]]]:
        first = plans[0]
        common: dict[str, Any] = {
            "prompt": [p.request.prompt for p in plans],
            "negative_prompt": [first.negative_prompt] * len(plans)
            if first.negative_prompt
            else None,
            "num_inference_steps": first.steps,
            "guidance_scale": first.guidance_scale,
            "generator": [torch.Generator(self.device).manual_seed(p.request.seed) for p in plans],
            "output_type": "np",
        }
        try:
            with self._session():
                if first.mode == TXT2IMG:
                    size = first.request.size
                    output = self.txt2img(**common, height=size, width=size)
                else:
                    output = self.img2img(
                        **common, image=[p.base for p in plans], strength=first.strength
                    )
        except torch.cuda.OutOfMemoryError as exc:
            # The device, not the job: another process holds its memory. A DependencyError
            # is retried, never dead-lettered (dnft.stream).
            raise DependencyError(
                f"diffusion {first.mode} of {len(plans)} image(s) ran out of device memory: {exc}"
            ) from exc
        except Exception as exc:
            raise RenderError(
                f"diffusion {first.mode} of {len(plans)} image(s) at {first.request.size} px "
                f"failed: {type(exc).__name__}: {exc}"
            ) from exc
        images = np.asarray(output.images, dtype=np.float32)
        return [(np.clip(image, 0.0, 1.0) * 255.0).round().astype(np.uint8) for image in images]

    def _result(
        self, plan: _Plan, pixels: np.ndarray[Any, np.dtype[np.uint8]], batch: int
    ) -> RenderResult:
        request = plan.request
        provenance: dict[str, JSONValue] = {
            "seed": request.seed,
            "prompt": request.prompt,
            "negative_prompt": plan.negative_prompt,
            "mode": plan.mode,
            "steps": plan.steps,
            "guidance_scale": plan.guidance_scale,
            "strength": plan.strength if plan.mode == IMG2IMG else None,
            "size": request.size,
            "base_image_sha256": plan.base_sha256,
            "request_sha256": request.fingerprint(),
            "model_dir": str(self.model_dir),
            "model_sha256": self.model_sha256,
            "lora": None if self.lora is None else str(self.lora),
            "lora_sha256": self.lora_sha256,
            "pipeline": type(self.txt2img if plan.mode == TXT2IMG else self.img2img).__name__,
            "scheduler": type(self.txt2img.scheduler).__name__,
            "device": self.device,
            "gpu": torch.cuda.get_device_name() if self.device.startswith("cuda") else None,
            "dtype": str(self.dtype).removeprefix("torch."),
            "torch_threads": self.threads,
            "batch_size": batch,
            "versions": dict(self._versions),
        }
        height, width = int(pixels.shape[0]), int(pixels.shape[1])
        return RenderResult.build(
            encode_png(pixels),
            width=width,
            height=height,
            renderer=self.name,
            renderer_version=self.version,
            provenance=provenance,
            pixels=pixels,
        )


def _load_lora(pipeline: Any, lora: Path) -> str:
    """Load LoRA weights (a directory or a .safetensors file) into ``pipeline``; return their
    sha256. Raises ModelLoadError, MissingDependencyError without ``peft``."""
    if importlib.util.find_spec("peft") is None:
        raise MissingDependencyError("LoRA weights need the peft package: pip install peft")
    if lora.is_file():
        check_safetensors(lora) if lora.suffix == ".safetensors" else None
        digest = hashlib.sha256(lora.read_bytes()).hexdigest()
        source, weight_name = str(lora.parent), lora.name
    elif lora.is_dir():
        digest, _ = model_dir_sha256(lora)
        source, weight_name = str(lora), None
    else:
        raise ModelLoadError(f"LoRA weights {lora} do not exist")
    try:
        pipeline.load_lora_weights(source, weight_name=weight_name, local_files_only=True)
    except Exception as exc:
        raise ModelLoadError(f"cannot load LoRA weights from {lora}: {exc}") from exc
    return digest
