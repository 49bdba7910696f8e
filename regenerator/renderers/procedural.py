# Over 450 lines: one picture, layer by layer, on shared integer geometry (one algorithm).
"""The procedural renderer: a flower-and-orbits picture from traits, stage, feed bucket and seed.

No model weights. Layers, back to front:

1. background: a vertical gradient of the palette, dimmed toward night in a low bucket and
   warmed (with sun rays) in a high one, plus a glow behind the flower;
2. stars, scattered by the seed (more of them at night);
3. orbits: 1 to 7 rings, solid and dashed, more with each stage;
4. satellites on the orbits, as many per ring as the bucket's level;
5. outer and inner petals: count and length grow with the stage (3, 5, 8, 13, 21 petals);
6. the core, which grows with the ``fed`` trait and carries one seed per feeding (phyllotaxis).

The token's identity (palette, petal shape, rotation) comes from its token id, so an evolving
token stays recognisable; trait ``palette`` (a palette name or index) overrides the palette,
trait ``mood`` tints it. Byte-identical output for the same request on any machine: geometry is
integer-only (a Bhaskara sine table, an integer arctangent, exact integer square roots), random
numbers come from SHAKE-256, and the PNG encoder writes no metadata (``base.encode_png``; the
compressed bytes also depend on the deflate library, so provenance records ``pixels_sha256`` too).

Speed: what a request's palette and token do not change is cached (polar coordinate maps per
size, glow and sun-ray masks per bucket, orbit masks per stage, petal outlines per token and
stage); a render recomposes the rest in planar uint16 numpy arithmetic, about 5 ms of pixels
and 4 ms of PNG at 512 px on one core (bench/render.py).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

from regenerator.renderers.base import (
    PNG_COMPRESS_LEVEL,
    PNG_DEFLATE,
    PNG_MAX_LEVEL,
    JSONValue,
    RenderInputError,
    RenderRequest,
    RenderResult,
    TraitValue,
    encode_png,
    sha256_hex,
)

I64: TypeAlias = npt.NDArray[np.int64]
I32: TypeAlias = npt.NDArray[np.int32]
U16: TypeAlias = npt.NDArray[np.uint16]
Color: TypeAlias = tuple[int, int, int]

NAME = "procedural"
# Bump whenever the same request would draw different pixels.
VERSION = "1"
DEFAULT_STAGES = ("seed", "sprout", "bloom", "radiant")
DEFAULT_BUCKETS = ("low", "mid", "high")

TURN = 4096  # angles are integers in 1/4096 of a turn
ONE = 1 << 14  # fixed-point 1.0 of the sine table
SUB = 16  # radii are integers in 1/16 pixel: edges get 16 levels of anti-aliasing
PETAL_COUNTS = (3, 5, 8, 13, 21)
# Golden angle (137.508 degrees) in 1/4096 turn, times 1000: seeds in the core never line up.
GOLDEN_ANGLE_MILLI = 1_564_445
MAX_FED_SEEDS = 233
MAX_FED = 10**9


@dataclass(frozen=True, slots=True)
class Palette:
    name: str
    bg_top: Color
    bg_bottom: Color
    ring: Color
    petal: Color
    petal_inner: Color
    core: Color

    @classmethod
    def parse(cls, line: str) -> Palette:
        """``"name: rrggbb rrggbb rrggbb rrggbb rrggbb rrggbb"``."""
        name, colours = line.split(":")
        rgb = [(int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)) for c in colours.split()]
        return cls(name, *rgb)


# name: background top, background bottom, orbits, petals, inner petals, core (RGB hex).
PALETTES = tuple(
    Palette.parse(line)
    for line in (
        "dusk: 141030 5c265c ffbedc ff6f61 ffc478 fff0be",
        "lagoon: 06283d 0c6e78 aaf0e6 38c8b4 c8fad2 ffe678",
        "moss: 122218 3c5a32 d2e696 8cbe5a e6dc78 ffb450",
        "ember: 280a0a 782814 ffc878 e65028 ffaa3c fff0c8",
        "glacier: c8def0 78a0c8 325082 5a8cd2 e6f5ff 283c6e",
        "orchid: 2d143c 783c8c f0c8ff c864dc ffb4e6 fffad2",
        "sand: f0dcb4 c89664 784628 d25a3c fac878 5a321e",
        "neon: 0a0a14 1e143c 00ffc8 ff00a0 ffe600 ffffff",
    )
)
MOOD_TINTS: Mapping[str, Color] = {
    "happy": (255, 210, 60),
    "excited": (255, 110, 190),
    "calm": (80, 200, 220),
    "sleepy": (150, 130, 210),
    "sad": (60, 100, 210),
    "angry": (235, 40, 30),
}
# Colours an unknown mood maps to, by hash, so any mood visibly tints.
OTHER_TINTS: tuple[Color, ...] = ((120, 255, 120), (255, 150, 60), (200, 200, 255), (255, 90, 90))
MOOD_PERMILLE = 300  # how far a mood pulls the flower's colours toward its tint
NIGHT: Color = (8, 10, 28)
SUN: Color = (255, 180, 100)


def _mix(a: Color, b: Color, permille: int) -> Color:
    return (
        (a[0] * (1000 - permille) + b[0] * permille) // 1000,
        (a[1] * (1000 - permille) + b[1] * permille) // 1000,
        (a[2] * (1000 - permille) + b[2] * permille) // 1000,
    )


def _readonly(array: npt.NDArray[np.generic]) -> None:
    # Cached arrays are shared between renders (and threads): nobody may write into them.
    array.flags.writeable = False


def _stream(key: int, purpose: bytes, count: int) -> I64:
    """``count`` deterministic 32-bit numbers for ``key`` (a seed or a token id)."""
    digest = hashlib.shake_256(purpose + b"\0" + str(key).encode()).digest(4 * count)
    return np.frombuffer(digest, dtype=">u4").astype(np.int64)


@lru_cache(maxsize=1)
def _sin_table() -> I64:
    """sin(2 pi u / TURN) * ONE for u in [0, TURN), Bhaskara I's approximation (error < 0.002)."""
    u = np.arange(TURN, dtype=np.int64)
    h = u % (TURN // 2)
    p = h * (TURN // 2 - h)
    s = (16 * p * ONE) // (5 * (TURN // 2) ** 2 - 4 * p)
    table = np.where(u < TURN // 2, s, -s)
    _readonly(table)
    return table


def _isqrt(m: I64) -> I64:
    """Exact floor(sqrt(m)) for int64 arrays below 2**52 (float sqrt, then an integer fix-up)."""
    r = np.sqrt(m.astype(np.float64)).astype(np.int64)
    r -= (r * r > m).astype(np.int64)
    r += ((r + 1) * (r + 1) <= m).astype(np.int64)
    return r


@lru_cache(maxsize=8)
def _polar(n: int) -> tuple[I32, I32]:
    """Per-pixel radius (1/16 px) and angle (1/TURN) around the image centre, integers only."""
    c = np.arange(n, dtype=np.int64) * 2 + 1 - n  # pixel centres, in half pixels
    x = np.broadcast_to(c[None, :], (n, n))
    y = np.broadcast_to(c[:, None], (n, n))
    radius = _isqrt(64 * (x * x + y * y))  # 16 * sqrt(d2) / 2
    ax, ay = np.abs(x), np.abs(y)
    lo, hi = np.minimum(ax, ay), np.maximum(ax, ay)
    t = (lo * 1024) // np.maximum(hi, 1)
    # atan(z) ~= z (pi/4 + 0.273 (1 - z)) on [0, 1] (error < 0.004 rad), in 1/TURN: 512 is pi/4.
    angle = (t * (512 * 1024 + 178 * (1024 - t))) >> 20
    angle = np.where(ay > ax, 1024 - angle, angle)
    angle = np.where(x < 0, 2048 - angle, angle)
    angle = np.where(y < 0, TURN - angle, angle) % TURN
    r32, a32 = radius.astype(np.int32), angle.astype(np.int32)
    _readonly(r32)
    _readonly(a32)
    return r32, a32


def _coverage(distance16: I32 | I64) -> U16:
    """Alpha 0..256 from a signed distance inside an edge (1/16 px): a one-pixel ramp."""
    return (np.clip(distance16, 0, SUB) * (256 // SUB)).astype(np.uint16)


def _blend(out: U16, alpha: U16, color: U16) -> None:
    """out = out * (1 - a) + color * a, in place; alpha in 0..256, values stay below 2**16.

    Images are planar, (3, H, W): broadcasting over the leading axis keeps numpy's inner loops
    long and contiguous, 10-20x faster than blending (H, W, 3) with its 3-long inner loop.
    """
    out *= 256 - alpha
    out += color * alpha
    out >>= 8


def _rgb(color: Color) -> U16:
    """A colour shaped (3, 1, 1), to broadcast over a planar image."""
    return np.array(color, dtype=np.uint16).reshape(3, 1, 1)


@lru_cache(maxsize=16)
def _sky_light(n: int, glow_pm: int, rays: int) -> tuple[U16, U16 | None]:
    """Alpha of the glow behind the flower and of the sun rays: they change with the bucket
    only, so they are cached; the colours laid over them change per token."""
    radius, angle = _polar(n)
    reach = n * SUB * 7 // 10
    q = np.clip(reach - radius.astype(np.int64), 0, None)
    falloff = q * q // reach  # (1 - r/reach)^2 * reach
    glow = (falloff * 256 * glow_pm // (reach * 1000)).astype(np.uint16)
    _readonly(glow)
    if not rays:
        return glow, None
    wave = _sin_table()[(angle.astype(np.int64) * rays) % TURN]
    strength = (np.clip(wave, 0, None) * falloff // (ONE * reach // 256) * 45 // 100).astype(
        np.uint16
    )
    _readonly(strength)
    return glow, strength


def _background(n: int, top: Color, bottom: Color, glow: Color, glow_pm: int, rays: int) -> U16:
    """A fresh sky: vertical gradient, glow in ``glow``'s colour, sun rays in a high bucket."""
    y = np.arange(n, dtype=np.int64)[:, None]
    grad = (np.array(top)[None, :] * (n - 1 - y) + np.array(bottom)[None, :] * y) // max(n - 1, 1)
    bg = np.empty((3, n, n), dtype=np.uint16)
    bg[...] = grad.T.astype(np.uint16)[:, :, None]
    glow_alpha, ray_alpha = _sky_light(n, glow_pm, rays)
    _blend(bg, glow_alpha, _rgb(glow))
    if ray_alpha is not None:
        _blend(bg, ray_alpha, _rgb(SUN))
    return bg


@lru_cache(maxsize=32)
def _orbits(n: int, count: int) -> U16:
    """Alpha of ``count`` orbit rings, odd ones dashed: the layer only the stage changes."""
    radius, angle = _polar(n)
    big = n * SUB * 46 // 100
    half_width = max(SUB * n // 512, SUB // 2)  # about 1 px at 512 px
    alpha = np.zeros((n, n), dtype=np.uint16)
    for i in range(count):
        ring = big * (560 + 440 * i // max(count - 1, 1)) // 1000 if count > 1 else big * 56 // 100
        line = _coverage(half_width + SUB // 2 - np.abs(radius - ring))
        if i % 2:
            # About 24 dashes per 512 px of circumference at this radius.
            dashes = max(8, 2 * (ring * 314 // (100 * SUB * 24)) // 2)
            line = line * (((angle * dashes) // TURN) % 2 == 0)
        np.maximum(alpha, line.astype(np.uint16), out=alpha)
    alpha = (alpha.astype(np.uint32) * 170 // 256).astype(np.uint16)  # orbits are translucent
    _readonly(alpha)
    return alpha


@lru_cache(maxsize=256)
def _petal_radii(petals: int, length16: int, rotation: int, profile: int) -> I64:
    """Petal outline: radius (1/16 px) for each angle, a rose of ``petals`` lobes."""
    u = np.arange(TURN, dtype=np.int64)
    phase = ((u - rotation) * petals) % TURN
    s = _sin_table()[phase // 2]  # 0..ONE, one hump per petal
    if profile == 0:
        shape = _isqrt(s * ONE)  # broad
    elif profile == 1:
        shape = s
    else:
        shape = s * s // ONE  # slim
    inner = length16 * 18 // 100  # petals join around the core
    radii = inner + (length16 - inner) * shape // ONE
    _readonly(radii)
    return radii


@lru_cache(maxsize=64)
def _radial_colors(inner: Color, outer: Color, length16: int) -> U16:
    """Colour by radius in whole pixels, shaped (3, R): ``inner`` at the centre to ``outer``."""
    steps = length16 // SUB + 1
    t = np.minimum(np.arange(steps + 2, dtype=np.int64), steps)[None, :]
    lut = (np.array(inner)[:, None] * (steps - t) + np.array(outer)[:, None] * t) // steps
    table = np.ascontiguousarray(lut.astype(np.uint16))
    _readonly(table)
    return table


@lru_cache(maxsize=64)
def _disc(radius16: int) -> U16:
    """Alpha sprite of an anti-aliased disc, centred on the corner between its middle pixels."""
    side = 2 * (radius16 // SUB + 2)
    c = (np.arange(side, dtype=np.int64) * 2 + 1 - side) * (SUB // 2)
    d = _isqrt(c[None, :] ** 2 + c[:, None] ** 2)
    sprite = _coverage(radius16 - d)
    _readonly(sprite)
    return sprite


def _box(n: int, reach16: int) -> tuple[slice, slice]:
    half = reach16 // SUB + 2
    lo, hi = max(0, n // 2 - half), min(n, n - n // 2 + half)
    return slice(lo, hi), slice(lo, hi)


def _stamp(canvas: U16, sprite: U16, cx: int, cy: int) -> None:
    """canvas = max(canvas, sprite) with the sprite centred at (cx, cy); clipped at the edges."""
    side = sprite.shape[0]
    y0, x0 = cy - side // 2, cx - side // 2
    ys, xs = max(0, y0), max(0, x0)
    ye, xe = min(canvas.shape[0], y0 + side), min(canvas.shape[1], x0 + side)
    if ys >= ye or xs >= xe:
        return
    view = canvas[ys:ye, xs:xe]
    np.maximum(view, sprite[ys - y0 : ye - y0, xs - x0 : xe - x0], out=view)


def _paint_sprite(out: U16, sprite: U16, cx: int, cy: int, color: Color) -> None:
    side = sprite.shape[0]
    y0, x0 = cy - side // 2, cx - side // 2
    ys, xs = max(0, y0), max(0, x0)
    ye, xe = min(out.shape[1], y0 + side), min(out.shape[2], x0 + side)
    if ys < ye and xs < xe:
        alpha = sprite[ys - y0 : ye - y0, xs - x0 : xe - x0]
        _blend(out[:, ys:ye, xs:xe], alpha, _rgb(color))


def _polar_point(centre2: int, radius16: int, angle: int) -> tuple[int, int]:
    """Pixel nearest to the point at ``radius16``, ``angle`` from the centre (in half pixels)."""
    table = _sin_table()
    dx = radius16 * int(table[(angle + TURN // 4) % TURN]) // (ONE * SUB // 2)
    dy = radius16 * int(table[angle % TURN]) // (ONE * SUB // 2)
    return (centre2 + dx) // 2, (centre2 + dy) // 2


def _fed(traits: Mapping[str, TraitValue]) -> int:
    value = traits.get("fed", 0)
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit()):
            return 0
        return MAX_FED if len(text) > len(str(MAX_FED)) else min(int(text), MAX_FED)
    return max(0, min(int(value), MAX_FED))


def _palette(traits: Mapping[str, TraitValue], pick: int) -> Palette:
    chosen = traits.get("palette")
    if isinstance(chosen, str):
        for palette in PALETTES:
            if palette.name == chosen.strip().lower():
                return palette
    elif isinstance(chosen, int):
        return PALETTES[chosen % len(PALETTES)]
    return PALETTES[pick % len(PALETTES)]


def _mood(traits: Mapping[str, TraitValue]) -> tuple[str | None, Color | None]:
    value = traits.get("mood")
    mood = "" if value is None else str(value).strip().lower()
    if not mood:
        return None, None
    tint = MOOD_TINTS.get(mood)
    if tint is None:
        tint = OTHER_TINTS[int(hashlib.sha256(mood.encode()).hexdigest(), 16) % len(OTHER_TINTS)]
    return mood, tint


@dataclass(frozen=True, slots=True)
class Scene:
    """What a picture shows, decided from a request; ``paint`` draws it.

    Lengths are in 1/16 px, angles in 1/TURN, colours RGB. Pure data: the split keeps every
    artistic decision in ``ProceduralRenderer.scene`` and every pixel operation in ``paint``.
    """

    size: int
    palette: str
    mood: str | None
    fed: int
    stage_level: int
    bucket_level: int
    sky_top: Color
    sky_bottom: Color
    glow_permille: int
    rays: int
    stars: int
    seed: int
    orbits: int
    orbit_colour: Color
    satellites_per_orbit: int
    satellite_colour: Color
    petals: int
    petal_length: int
    rotation: int
    profile: int
    petal: Color
    inner_petal: Color | None
    core_radius: int
    core: Color
    seeds: int

    def facts(self) -> dict[str, JSONValue]:
        """The scene's choices worth recording in provenance."""
        return {
            "stage_level": self.stage_level,
            "bucket_level": self.bucket_level,
            "palette": self.palette,
            "mood": self.mood,
            "fed": self.fed,
            "petals": self.petals,
            "orbits": self.orbits,
        }


def _orbit_radius(big: int, i: int, count: int) -> int:
    if count == 1:
        return big * 56 // 100
    return big * (560 + 440 * i // (count - 1)) // 1000


def _paint_stars(out: U16, scene: Scene) -> None:
    n, count = scene.size, scene.stars
    rnd = _stream(scene.seed, b"stars", 3 * count)
    xs, ys = rnd[:count] % n, rnd[count : 2 * count] % n
    alpha = (60 + rnd[2 * count :] % 160).astype(np.uint16)
    out[:, ys, xs] = (out[:, ys, xs] * (256 - alpha) + 255 * alpha) >> 8


def _paint_orbits(out: U16, scene: Scene) -> None:
    n, big = scene.size, scene.size * SUB * 46 // 100
    _blend(out, _orbits(n, scene.orbits), _rgb(scene.orbit_colour))
    phases = _stream(scene.seed, b"satellites", scene.orbits)
    per_orbit = scene.satellites_per_orbit
    for i in range(scene.orbits):
        orbit = _orbit_radius(big, i, scene.orbits)
        sprite = _disc(n * SUB * (9 + 5 * i // max(scene.orbits - 1, 1)) // 1000 + SUB)
        for j in range(per_orbit):
            cx, cy = _polar_point(n, orbit, int(phases[i]) + j * TURN // per_orbit)
            _paint_sprite(out, sprite, cx, cy, scene.satellite_colour)


def _paint_petals(out: U16, scene: Scene, reach: int, turn: int, fill: Color, tip: Color) -> None:
    radius, angle = _polar(scene.size)
    rows, cols = _box(scene.size, reach)
    region = out[:, rows, cols]
    r = radius[rows, cols]
    outline = _petal_radii(scene.petals, reach, turn % TURN, scene.profile)
    inside = outline[angle[rows, cols]] - r
    shade = _radial_colors(_mix(fill, (0, 0, 0), 250), _mix(fill, tip, 450), reach)
    cover = _coverage(inside)
    _blend(region, cover, shade[:, np.minimum(r >> 4, reach // SUB + 1)])
    edge = cover - _coverage(inside - 2 * SUB)
    _blend(region, edge * 3 // 4, _rgb(_mix(fill, (0, 0, 0), 550)))


def _paint_core(out: U16, scene: Scene) -> None:
    n, core_r, core = scene.size, scene.core_radius, scene.core
    radius, _ = _polar(n)
    rows, cols = _box(n, core_r)
    region = out[:, rows, cols]
    r = radius[rows, cols]
    shade = _radial_colors(_mix(core, (255, 255, 255), 400), _mix(core, (0, 0, 0), 200), core_r)
    _blend(region, _coverage(core_r - r), shade[:, np.minimum(r >> 4, core_r // SUB + 1)])
    if not scene.seeds:
        return
    dots = np.zeros(region.shape[1:], dtype=np.uint16)
    spread = core_r * 86 // 100
    dot = _disc(max(SUB * 6 // 10, spread * 55 // (100 * math.isqrt(scene.seeds))))
    offset = rows.start  # the box is square and centred: the same offset on both axes
    for k in range(scene.seeds):
        # Vogel's spiral: radius grows with sqrt(k), angle by the golden angle.
        at = spread * math.isqrt(k * 1024 + 512) // math.isqrt(scene.seeds * 1024)
        cx, cy = _polar_point(n, at, (k * GOLDEN_ANGLE_MILLI // 1000) % TURN)
        _stamp(dots, dot, cx - offset, cy - offset)
    _blend(region, dots, _rgb(_mix(core, (0, 0, 0), 600)))


def paint(scene: Scene) -> npt.NDArray[np.uint8]:
    """Draw a scene, back to front, into an (N, N, 3) uint8 array. CPU-bound, a few ms."""
    out = _background(
        scene.size, scene.sky_top, scene.sky_bottom, scene.petal, scene.glow_permille, scene.rays
    )
    _paint_stars(out, scene)
    _paint_orbits(out, scene)
    white = (255, 255, 255)
    _paint_petals(
        out, scene, scene.petal_length, scene.rotation, scene.petal, _mix(scene.petal, white, 350)
    )
    if scene.inner_petal is not None:
        half_petal = TURN // (2 * scene.petals)
        inner_length = scene.petal_length * 55 // 100
        _paint_petals(
            out, scene, inner_length, scene.rotation + half_petal, scene.inner_petal, white
        )
    _paint_core(out, scene)
    # Interleave as uint8 planes: 4x faster than transposing the uint16 image.
    return np.stack(list(out.astype(np.uint8)), axis=-1)


class ProceduralRenderer:
    """Deterministic generative art with numpy; no model weights.

    ``stages`` and ``buckets`` are the collection's names, in order of growth: the level of a
    request's ``stage`` and ``bucket`` is its index there. ``render`` blocks for a few
    milliseconds of CPU (run it in a worker thread or process) and raises RenderInputError for
    an unknown stage or bucket; ``params`` and ``base_image`` are ignored. Thread-safe: the
    caches hold read-only arrays.
    """

    name = NAME
    version = VERSION

    def __init__(
        self,
        stages: Sequence[str] = DEFAULT_STAGES,
        buckets: Sequence[str] = DEFAULT_BUCKETS,
        *,
        png_level: int = PNG_COMPRESS_LEVEL,
    ) -> None:
        if not stages or not buckets:
            raise ValueError("stages and buckets must not be empty")
        if len(set(stages)) != len(stages) or len(set(buckets)) != len(buckets):
            raise ValueError("stage and bucket names must be unique")
        if not 0 <= png_level <= PNG_MAX_LEVEL:
            raise ValueError(f"png_level is an ISA-L level, 0 to {PNG_MAX_LEVEL}, not {png_level}")
        self.stages = tuple(stages)
        self.buckets = tuple(buckets)
        self.png_level = png_level

    @staticmethod
    def _index(names: tuple[str, ...], value: str, what: str) -> int:
        try:
            return names.index(value)
        except ValueError:
            raise RenderInputError(f"unknown {what} {value!r}; known: {list(names)}") from None

    def scene(self, request: RenderRequest) -> Scene:
        """Decide what the request's picture shows. Raises RenderInputError."""
        stage_level = self._index(self.stages, request.stage, "stage")
        bucket_level = self._index(self.buckets, request.bucket, "bucket")
        # Growth as permille of the way to the last stage / bucket.
        stage_pm = stage_level * 1000 // max(len(self.stages) - 1, 1)
        bucket_pm = bucket_level * 1000 // max(len(self.buckets) - 1, 1)
        identity = _stream(request.token_id, b"identity", 3)
        palette = _palette(request.traits, int(identity[0]))
        mood, tint = _mood(request.traits)
        fed = _fed(request.traits)
        n = request.size
        big = n * SUB * 46 // 100

        top, bottom = palette.bg_top, palette.bg_bottom
        ring, petal, inner, core = palette.ring, palette.petal, palette.petal_inner, palette.core
        if tint is not None:
            ring, petal = _mix(ring, tint, MOOD_PERMILLE), _mix(petal, tint, MOOD_PERMILLE)
            inner, core = _mix(inner, tint, MOOD_PERMILLE), _mix(core, tint, 150)
            top, bottom = _mix(top, tint, 120), _mix(bottom, tint, 120)
        if bucket_pm < 500:  # a low feed dims the sky toward night
            pull = (500 - bucket_pm) * 45 // 50
            top, bottom = _mix(top, NIGHT, pull), _mix(bottom, NIGHT, pull)
        else:  # a high one warms it
            pull = (bucket_pm - 500) * 28 // 50
            top, bottom = _mix(top, SUN, pull // 2), _mix(bottom, SUN, pull)

        petals = PETAL_COUNTS[stage_pm * (len(PETAL_COUNTS) - 1) // 1000]
        length = big * (280 + 520 * stage_pm // 1000) // 1000
        # The core grows with each doubling of ``fed``; each feeding adds a seed to it.
        core_r = big * (70 + 50 * stage_pm // 1000) // 1000 + big * 12 * fed.bit_length() // 1000
        core_r = min(core_r, length * 9 // 10 if stage_pm else big * 40 // 100)
        return Scene(
            size=n,
            palette=palette.name,
            mood=mood,
            fed=fed,
            stage_level=stage_level,
            bucket_level=bucket_level,
            sky_top=top,
            sky_bottom=bottom,
            glow_permille=120 + bucket_pm * 45 // 100,
            rays=12 if bucket_pm >= 750 else 0,
            stars=max(4, (90 - bucket_pm * 7 // 100) * n // 512),  # fewer in a brighter sky
            seed=request.seed,
            orbits=1 + 6 * stage_pm // 1000,
            orbit_colour=ring,
            satellites_per_orbit=bucket_level,
            satellite_colour=_mix(core, (255, 255, 255), 300),
            petals=petals,
            petal_length=length,
            rotation=int(identity[1] % TURN),
            profile=int(identity[2] % 3),
            petal=petal,
            inner_petal=inner if stage_pm > 0 else None,
            core_radius=core_r,
            core=core,
            seeds=min(fed, MAX_FED_SEEDS),
        )

    def render_pixels(
        self, request: RenderRequest
    ) -> tuple[npt.NDArray[np.uint8], dict[str, JSONValue]]:
        """The image as an (N, N, 3) uint8 array and what shaped it. Raises RenderInputError."""
        scene = self.scene(request)
        return paint(scene), scene.facts()

    def render(self, request: RenderRequest) -> RenderResult:
        """Render one request to PNG. Blocks (CPU); raises RenderInputError."""
        pixels, facts = self.render_pixels(request)
        provenance: dict[str, JSONValue] = {
            "seed": request.seed,
            "token_id": request.token_id,
            "stage": request.stage,
            "bucket": request.bucket,
            "size": request.size,
            "request_sha256": request.fingerprint(),
            **facts,
            "pixels_sha256": sha256_hex(pixels.tobytes()),
            "png": {
                "filter": "up",
                "deflate": PNG_DEFLATE,
                "level": self.png_level,
            },
            "numpy": np.__version__,
        }
        return RenderResult.build(
            encode_png(pixels, self.png_level),
            width=request.size,
            height=request.size,
            renderer=self.name,
            renderer_version=self.version,
            provenance=provenance,
            pixels=pixels,
        )

    def render_batch(self, requests: Sequence[RenderRequest]) -> list[RenderResult]:
        """One ``render`` per request, in order (nothing to gain from batching on a CPU core)."""
        return [self.render(request) for request in requests]
