"""Sample art for ``renderer: {kind: layers}``: draws a small layers folder and its manifest.

Deterministic (numpy drawing, Pillow PNG with fixed settings): the same arguments write the
same bytes. The manifest stacks a background picked by the ``market`` trait, a body with a
variant per stage, a mood face picked by ``mood`` (default ``calm``), a screen-blended glow
and a multiply-blended shadow.

    .venv/bin/python scripts/draw_layers_art.py OUT_DIR [--size 512] [--stages egg,kid]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import numpy.typing as npt
import yaml
from PIL import Image

RGBA = npt.NDArray[np.uint8]
MARKETS = {"bear": (70, 40, 60), "calm": (40, 70, 90), "bull": (40, 100, 60)}
MOODS = {"calm": (90, 200, 160), "happy": (250, 210, 60), "sleepy": (120, 140, 230)}


def _grid(size: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) / size
    return x, y


def _disc(size: int, cx: float, cy: float, r: float, rgb: tuple[int, int, int]) -> RGBA:
    """An anti-aliased disc (centre and radius as fractions of the side)."""
    x, y = _grid(size)
    edge = np.clip((r - np.hypot(x - cx, y - cy)) * size + 0.5, 0, 1)
    out = np.zeros((size, size, 4), dtype=np.uint8)
    out[..., :3] = rgb
    out[..., 3] = np.rint(edge * 255).astype(np.uint8)
    return out


def _background(size: int, rgb: tuple[int, int, int]) -> RGBA:
    _, y = _grid(size)
    out = np.empty((size, size, 4), dtype=np.uint8)
    for i, channel in enumerate(rgb):
        out[..., i] = np.rint(channel * (0.6 + 0.4 * y)).astype(np.uint8)
    out[..., 3] = 255
    return out


def _glow(size: int) -> RGBA:
    x, y = _grid(size)
    fall = np.clip(1 - np.hypot(x - 0.5, y - 0.35) / 0.5, 0, 1)
    out = np.zeros((size, size, 4), dtype=np.uint8)
    out[..., :3] = (255, 230, 180)
    out[..., 3] = np.rint(fall**2 * 255).astype(np.uint8)
    return out


def _shadow(size: int) -> RGBA:
    x, y = _grid(size)
    out = np.zeros((size, size, 4), dtype=np.uint8)
    out[..., :3] = (60, 50, 80)
    inside = np.clip(1 - np.hypot((x - 0.5) / 0.3, (y - 0.88) / 0.05), 0, 1)
    out[..., 3] = np.rint(inside * 255).astype(np.uint8)
    return out


def _save(folder: Path, name: str, rgba: RGBA) -> str:
    Image.fromarray(rgba, "RGBA").save(folder / name, format="PNG", compress_level=6)
    return name


def draw(folder: Path, *, size: int = 512, stages: tuple[str, ...] = ("egg", "kid")) -> Path:
    """Write the layer PNGs and ``manifest.yaml`` into ``folder``; returns the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    backgrounds = {
        m: _save(folder, f"bg-{m}.png", _background(size, rgb)) for m, rgb in MARKETS.items()
    }
    body_stages = {
        stage: _save(
            folder, f"body-{stage}.png", _disc(size, 0.5, 0.55, 0.12 + 0.08 * i, (230,) * 3)
        )
        for i, stage in enumerate(stages[1:], start=1)
    }
    body = _save(folder, "body.png", _disc(size, 0.5, 0.55, 0.12, (230, 230, 230)))
    moods = {
        m: _save(folder, f"mood-{m}.png", _disc(size, 0.5, 0.5, 0.06, rgb))
        for m, rgb in MOODS.items()
    }
    manifest = {
        "layers": [
            {"name": "background", "trait": "market", "files": backgrounds, "default": "calm"},
            {"name": "body", "file": body, "stages": body_stages},
            {"name": "mood", "trait": "mood", "files": moods, "default": "calm"},
            {
                "name": "glow",
                "file": _save(folder, "glow.png", _glow(size)),
                "blend": "screen",
                "opacity": 0.5,
            },
            {
                "name": "shadow",
                "file": _save(folder, "shadow.png", _shadow(size)),
                "blend": "multiply",
                "opacity": 0.8,
            },
        ]
    }
    path = folder / "manifest.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--stages", default="egg,kid", help="the collection's stages, in order")
    args = parser.parse_args()
    print(draw(args.out, size=args.size, stages=tuple(args.stages.split(","))))


if __name__ == "__main__":
    main()
