"""Guardrails: checks a rendered image and its metadata must pass before a version can go public.

Pure functions (no I/O). The render worker runs them on every render, off the event loop:

* ``format``: the bytes are a PNG that decodes;
* ``size``: the decoded image is the collection's ``image_size`` square (and what the renderer
  said it drew);
* ``blank``: the image is not blank or near-uniform: the Shannon entropy of its grey levels and
  their standard deviation must reach the collection's minimums (a flat colour has entropy 0
  and deviation 0; a render that failed into noise-free mush scores low on both);
* ``near_duplicate``: its perceptual hash (a 64-bit dHash) is farther than
  ``duplicate_distance`` bits (Hamming) from the token's previous public art and from every
  other token's current art; the render worker asks Postgres for the near hashes
  (:func:`hash_bands` makes that an index lookup);
* ``metadata``: the metadata document is valid against the ERC-721 schema.

A check that fails yields a :class:`Failure` with a stable ``check`` name (a metric label) and
a human reason (shown to curators and stored on the attempt).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from dnft.errors import DecodeError
from dnft.timeline import HASH_BITS
from dnft.validation import validate_metadata

CHECKS = ("format", "size", "blank", "near_duplicate", "metadata")
# Entropy and deviation are measured on a grey thumbnail: cheap, and it ignores the
# pixel-level noise that would let a blank image with dithering pass.
_THUMB = 64


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed check: ``check`` is one of CHECKS, ``reason`` says what was measured."""

    check: str
    reason: str

    def as_json(self) -> dict[str, str]:
        return {"check": self.check, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class ImageFacts:
    """What the image checks measured: its size, grey-level entropy (bits) and deviation, and
    its perceptual hash (a signed 64-bit integer, as Postgres ``bigint`` stores it)."""

    width: int
    height: int
    entropy_bits: float
    stddev: float
    phash: int


def _signed(value: int) -> int:
    return value - (1 << HASH_BITS) if value >= 1 << (HASH_BITS - 1) else value


def dhash(grey: Image.Image) -> int:
    """The 64-bit difference hash of a grey image: shrink to 9x8, one bit per horizontal
    neighbour pair (left brighter than right). Robust to scaling, small noise and re-encoding;
    returned signed, to fit a Postgres ``bigint``."""
    small = np.asarray(grey.resize((9, 8), Image.Resampling.BOX), dtype=np.int16)
    bits = (small[:, :-1] > small[:, 1:]).flatten()
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return _signed(value)


def measure_png(png: bytes, pixels: npt.NDArray[np.uint8] | None = None) -> ImageFacts:
    """Decode a PNG and measure it. Raises DecodeError when the bytes are not a readable PNG.

    With ``pixels`` (what the renderer encoded; dnft's renderers keep them), the PNG is not
    decoded again: its signature and header must match them (a decode took 1.7 ms of a 512 px
    render's 3). CPU-bound (about a millisecond): call it from a worker thread.
    """
    if not png.startswith(b"\x89PNG\r\n\x1a\n"):
        raise DecodeError("not a PNG (bad signature)")
    if pixels is not None:
        if png[12:16] != b"IHDR" or len(png) < 24:
            raise DecodeError("PNG has no IHDR header first")
        width, height = struct.unpack(">II", png[16:24])
        if pixels.ndim != 3 or (pixels.shape[1], pixels.shape[0]) != (width, height):
            raise DecodeError(f"PNG header says {width}x{height}, its pixels are {pixels.shape}")
        grey = Image.fromarray(pixels).convert("L")
    else:
        try:
            with Image.open(io.BytesIO(png)) as opened:
                if opened.format != "PNG":
                    raise DecodeError(f"not a PNG ({opened.format})")
                opened.load()
                width, height = opened.size
                grey = opened.convert("L")
        except DecodeError:
            raise
        except Exception as exc:
            raise DecodeError(f"PNG does not decode: {type(exc).__name__}: {exc}") from exc
    thumb = np.asarray(grey.resize((_THUMB, _THUMB), Image.Resampling.BOX), dtype=np.float64)
    counts = np.bincount(thumb.astype(np.uint8).ravel(), minlength=256)
    share = counts[counts > 0] / counts.sum()
    entropy = float(-(share * np.log2(share)).sum())
    return ImageFacts(width, height, abs(entropy), float(thumb.std()), dhash(grey))


@dataclass(frozen=True, slots=True)
class ImageLimits:
    """A collection's image guardrails (``guardrails`` in its rules file)."""

    size: int
    min_entropy_bits: float
    min_stddev: float


def check_image(
    png: bytes,
    *,
    width: int,
    height: int,
    limits: ImageLimits,
    pixels: npt.NDArray[np.uint8] | None = None,
) -> tuple[ImageFacts | None, list[Failure]]:
    """Format, size and blankness of one rendered PNG (``width``/``height``: what the renderer
    reported). Returns the measurements (None when the PNG does not decode) and the failures.
    CPU-bound: call it from a worker thread."""
    try:
        facts = measure_png(png, pixels)
    except DecodeError as exc:
        return None, [Failure("format", str(exc))]
    failures: list[Failure] = []
    expected = (limits.size, limits.size)
    if (facts.width, facts.height) != expected or (width, height) != (facts.width, facts.height):
        failures.append(
            Failure(
                "size",
                f"image is {facts.width}x{facts.height} (renderer said {width}x{height}), "
                f"the collection's size is {limits.size}x{limits.size}",
            )
        )
    if facts.entropy_bits < limits.min_entropy_bits or facts.stddev < limits.min_stddev:
        failures.append(
            Failure(
                "blank",
                f"blank or near-uniform: entropy {facts.entropy_bits:.2f} bits "
                f"(min {limits.min_entropy_bits}), deviation {facts.stddev:.1f} "
                f"(min {limits.min_stddev})",
            )
        )
    return facts, failures


def check_metadata(document: dict[str, Any]) -> list[Failure]:
    """The metadata document against the ERC-721 schema (names the failing path)."""
    try:
        validate_metadata(document)
    except DecodeError as exc:
        return [Failure("metadata", f"metadata fails the schema: {exc}")]
    return []


def duplicate_failure(distance: int, of_token: int, token_id: int, version: int) -> Failure:
    """The failure for art within ``distance`` bits of ``of_token``'s current ``version``."""
    whose = "the token's previous version" if of_token == token_id else f"token {of_token}'s art"
    return Failure(
        "near_duplicate",
        f"near duplicate of {whose} (version {version}): perceptual hashes {distance} bits apart",
    )
