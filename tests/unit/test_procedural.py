"""The renderer contract (requests, seeds, PNG encoding) and the procedural renderer."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import itertools
import json
import os
import struct
import subprocess
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from dnft.collection import derive_seed
from regenerator.renderers import (
    ProceduralRenderer,
    Renderer,
    RenderInputError,
    RenderRequest,
    encode_png,
    procedural,
)

REPO = Path(__file__).resolve().parents[2]
STATE = "ab" * 32
# The pixels of GOLDEN_REQUEST. If a change to the art moves them on purpose, bump
# procedural.VERSION and update this; if not, the change broke determinism.
GOLDEN_PIXELS_SHA256 = "8dc23e0630b847a63579936a94483a5be1d55e1b0c17b4a09b5d0a15c015a0bd"
GOLDEN_SEED = 689724133533712064


def make(**overrides: Any) -> RenderRequest:
    fields: dict[str, Any] = {
        "token_id": 3,
        "traits": {"mood": "calm", "fed": 5},
        "stage": "sprout",
        "bucket": "mid",
        "seed": 11,
        "size": 128,
    }
    return RenderRequest(**{**fields, **overrides})


GOLDEN_REQUEST = make(
    token_id=42,
    traits={"mood": "happy", "fed": 21},
    stage="bloom",
    bucket="high",
    seed=GOLDEN_SEED,
    size=64,
)


@pytest.fixture(scope="module")
def renderer() -> ProceduralRenderer:
    return ProceduralRenderer()


def pixels(renderer: ProceduralRenderer, **overrides: Any) -> npt.NDArray[np.int16]:
    return renderer.render_pixels(make(**overrides))[0].astype(np.int16)


def mean_diff(a: npt.NDArray[np.int16], b: npt.NDArray[np.int16]) -> float:
    return float(np.abs(a - b).mean())


def png_chunks(png: bytes) -> list[bytes]:
    kinds, at = [], 8
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        kinds.append(png[at + 4 : at + 8])
        at += 12 + length
    return kinds


class TestRenderRequest:
    """Requests are validated and immutable once built."""

    def test_mappings_are_copied_and_read_only(self) -> None:
        traits: dict[str, str | int | float] = {"mood": "calm"}
        request = make(traits=traits)
        traits["mood"] = "angry"
        assert request.traits["mood"] == "calm"
        with pytest.raises(TypeError):
            request.traits["mood"] = "sad"  # type: ignore[index]

    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ({"token_id": -1}, "token_id"),
            ({"seed": -1}, "seed"),
            ({"seed": 2**63}, "seed"),
            ({"size": 8}, "size"),
            ({"size": 5000}, "size"),
            ({"traits": {"level": float("nan")}}, "finite"),
            ({"traits": {"level": [1]}}, "str, int or float"),
            ({"traits": {1: "x"}}, "keys must be strings"),
        ],
    )
    def test_rejects_bad_values(self, overrides: dict[str, Any], message: str) -> None:
        with pytest.raises(RenderInputError, match=message):
            make(**overrides)

    def test_fingerprint_ignores_mapping_order_only(self) -> None:
        a = make(traits={"a": 1, "b": 2})
        assert a.fingerprint() == make(traits={"b": 2, "a": 1}).fingerprint()
        assert a.fingerprint() != make(traits={"a": 1, "b": 3}).fingerprint()
        assert a.fingerprint() != dataclasses.replace(a, base_image=b"x").fingerprint()

    def test_equal_requests_hash_equal(self) -> None:
        assert make() == make()
        assert len({make(), make(), make(seed=12)}) == 2


class TestDeriveSeed:
    """Render seeds: sha256 of salt, token and state, 63 bits."""

    def test_known_answer_and_range(self) -> None:
        assert derive_seed("dnft-test", 42, STATE) == GOLDEN_SEED
        seeds = {derive_seed("salt", token, STATE) for token in range(1000)}
        assert len(seeds) == 1000
        assert all(0 <= s < 2**63 for s in seeds)

    def test_every_input_matters(self) -> None:
        seed = derive_seed("a", 1, STATE)
        assert seed != derive_seed("b", 1, STATE)
        assert seed != derive_seed("a", 2, STATE)
        assert seed != derive_seed("a", 1, "cd" * 32)
        # The separator keeps ("a1", 1) and ("a", 11) apart.
        assert derive_seed("a1", 1, STATE) != derive_seed("a", 11, STATE)

    def test_negative_token(self) -> None:
        with pytest.raises(ValueError, match="token_id"):
            derive_seed("a", -1, STATE)


class TestEncodePng:
    """The PNG writer: standard files with nothing but the pixels in them."""

    @pytest.mark.parametrize(("height", "width"), [(1, 1), (3, 7), (64, 64)])
    def test_decodes_to_the_same_pixels(self, height: int, width: int) -> None:
        rgb = np.random.default_rng(height).integers(0, 256, (height, width, 3), dtype=np.uint8)
        png = encode_png(rgb)
        with Image.open(io.BytesIO(png)) as image:
            assert image.mode == "RGB"
            assert np.array_equal(np.asarray(image), rgb)
        assert png_chunks(png) == [b"IHDR", b"IDAT", b"IEND"]

    def test_checksums_are_valid(self) -> None:
        png = encode_png(np.zeros((4, 4, 3), dtype=np.uint8))
        at = 8
        while at < len(png):
            (length,) = struct.unpack(">I", png[at : at + 4])
            body = png[at + 4 : at + 8 + length]
            (crc,) = struct.unpack(">I", png[at + 8 + length : at + 12 + length])
            assert zlib.crc32(body) == crc
            at += 12 + length

    def test_rejects_other_shapes(self) -> None:
        with pytest.raises(ValueError, match="uint8"):
            encode_png(np.zeros((4, 4), dtype=np.uint8))
        with pytest.raises(ValueError, match="uint8"):
            encode_png(np.zeros((4, 4, 3), dtype=np.float32))


class TestDeterminism:
    """Same request, same bytes: across calls, threads, processes and cache states."""

    def test_same_request_same_bytes(self, renderer: ProceduralRenderer) -> None:
        first = renderer.render(make())
        procedural._sky_light.cache_clear()
        procedural._orbits.cache_clear()
        procedural._petal_radii.cache_clear()
        assert ProceduralRenderer().render(make()).png == first.png
        assert first.sha256 == hashlib.sha256(first.png).hexdigest()

    def test_golden_pixels(self, renderer: ProceduralRenderer) -> None:
        result = renderer.render(GOLDEN_REQUEST)
        assert result.provenance["pixels_sha256"] == GOLDEN_PIXELS_SHA256

    def test_threads_agree(self, renderer: ProceduralRenderer) -> None:
        requests = [make(token_id=t % 4, stage=renderer.stages[t % 4]) for t in range(16)]
        with ThreadPoolExecutor(4) as pool:
            parallel = list(pool.map(renderer.render, requests))
        assert [r.png for r in parallel] == [renderer.render(r).png for r in requests]

    def test_another_process_renders_the_same_bytes(self, renderer: ProceduralRenderer) -> None:
        code = (
            "import sys, json\n"
            "from regenerator.renderers import ProceduralRenderer, RenderRequest\n"
            "request = RenderRequest(**json.loads(sys.argv[1]))\n"
            "print(ProceduralRenderer().render(request).sha256)\n"
        )
        fields = {
            "token_id": 42,
            "traits": {"mood": "happy", "fed": 21},
            "stage": "bloom",
            "bucket": "high",
            "seed": GOLDEN_SEED,
            "size": 64,
        }
        env = {**os.environ, "PYTHONHASHSEED": "12345", "OMP_NUM_THREADS": "1"}
        child = subprocess.run(
            [sys.executable, "-c", code, json.dumps(fields)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert child.stdout.strip() == renderer.render(GOLDEN_REQUEST).sha256


class TestVisibleChange:
    """Stage, bucket and traits change the picture visibly; the seed only its details."""

    def test_each_stage_differs_from_the_last(self, renderer: ProceduralRenderer) -> None:
        stages = [pixels(renderer, stage=s) for s in renderer.stages]
        for before, after in itertools.pairwise(stages):
            assert mean_diff(before, after) > 4.0

    def test_each_bucket_differs_from_the_last(self, renderer: ProceduralRenderer) -> None:
        buckets = [pixels(renderer, bucket=b) for b in renderer.buckets]
        for before, after in itertools.pairwise(buckets):
            assert mean_diff(before, after) > 10.0

    def test_growth_is_monotone_in_the_stage(self, renderer: ProceduralRenderer) -> None:
        facts = [renderer.render_pixels(make(stage=s))[1] for s in renderer.stages]
        petals = [cast(int, f["petals"]) for f in facts]
        orbits = [cast(int, f["orbits"]) for f in facts]
        assert petals == sorted(petals)
        assert len(set(petals)) == len(petals)
        assert orbits == sorted(orbits)

    def test_mood_tints(self, renderer: ProceduralRenderer) -> None:
        calm = pixels(renderer)
        assert mean_diff(calm, pixels(renderer, traits={"mood": "angry", "fed": 5})) > 10.0
        assert mean_diff(calm, pixels(renderer, traits={"mood": "whimsical", "fed": 5})) > 5.0

    def test_feeding_grows_the_core(self, renderer: ProceduralRenderer) -> None:
        hungry = pixels(renderer, traits={"fed": 0})
        fed = pixels(renderer, traits={"fed": 200})
        centre = slice(48, 80)
        assert mean_diff(hungry[centre, centre], fed[centre, centre]) > 5.0
        assert pixels(renderer, traits={"fed": "200"}).tolist() == fed.tolist()

    def test_tokens_have_their_own_identity(self, renderer: ProceduralRenderer) -> None:
        assert mean_diff(pixels(renderer, token_id=1), pixels(renderer, token_id=2)) > 10.0

    def test_palette_trait_overrides(self, renderer: ProceduralRenderer) -> None:
        _, facts = renderer.render_pixels(make(traits={"palette": "neon"}))
        assert facts["palette"] == "neon"
        _, facts = renderer.render_pixels(make(traits={"palette": 1}))
        assert facts["palette"] == procedural.PALETTES[1].name

    def test_seed_changes_details_only(self, renderer: ProceduralRenderer) -> None:
        a, b = pixels(renderer, seed=1), pixels(renderer, seed=2)
        assert 0.0 < mean_diff(a, b) < 2.0


class TestProceduralRenderer:
    """The Renderer contract."""

    def test_is_a_renderer(self, renderer: ProceduralRenderer) -> None:
        assert isinstance(renderer, Renderer)
        assert renderer.name == "procedural"
        assert renderer.version == procedural.VERSION

    @pytest.mark.parametrize("size", [16, 17, 33, 100, 256])
    def test_any_size(self, renderer: ProceduralRenderer, size: int) -> None:
        result = renderer.render(make(size=size))
        with Image.open(io.BytesIO(result.png)) as image:
            assert image.size == (size, size)
        assert (result.width, result.height) == (size, size)

    def test_png_is_the_pixels(self, renderer: ProceduralRenderer) -> None:
        result = renderer.render(make())
        rgb, _ = renderer.render_pixels(make())
        with Image.open(io.BytesIO(result.png)) as image:
            assert np.array_equal(np.asarray(image), rgb)
        assert result.provenance["pixels_sha256"] == hashlib.sha256(rgb.tobytes()).hexdigest()
        assert png_chunks(result.png) == [b"IHDR", b"IDAT", b"IEND"]

    def test_provenance_is_json(self, renderer: ProceduralRenderer) -> None:
        result = renderer.render(make())
        doc = json.loads(json.dumps(dict(result.provenance)))
        assert doc["seed"] == 11
        assert doc["stage"] == "sprout"
        assert doc["request_sha256"] == make().fingerprint()

    def test_batch_is_in_order(self, renderer: ProceduralRenderer) -> None:
        requests = [make(seed=s) for s in range(3)]
        assert [r.png for r in renderer.render_batch(requests)] == [
            renderer.render(r).png for r in requests
        ]

    def test_unknown_stage_or_bucket(self, renderer: ProceduralRenderer) -> None:
        with pytest.raises(RenderInputError, match="unknown stage 'egg'"):
            renderer.render(make(stage="egg"))
        with pytest.raises(RenderInputError, match="unknown bucket"):
            renderer.render(make(bucket="extreme"))

    def test_collection_names(self) -> None:
        custom = ProceduralRenderer(stages=["egg", "chick", "hen"], buckets=["calm", "storm"])
        result = custom.render(make(stage="hen", bucket="storm"))
        assert result.provenance["stage_level"] == 2
        with pytest.raises(ValueError, match="unique"):
            ProceduralRenderer(stages=["a", "a"])

    def test_cached_layers_are_read_only(self, renderer: ProceduralRenderer) -> None:
        renderer.render(make())
        radius, _ = procedural._polar(128)
        with pytest.raises(ValueError, match="read-only"):
            radius[0, 0] = 1
