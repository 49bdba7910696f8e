"""Guardrail checks, curation settings in collections and dnft.yaml, and /curate's auth
helpers: pure functions, no servers."""

from __future__ import annotations

import asyncio
import base64
import copy
import io
from typing import Any

import numpy as np
import pytest
from PIL import Image

from dnft.collection import MAX_SEED, attempt_seed, collection_from_mapping, reroll_seed
from dnft.config import settings_from_mapping
from dnft.errors import ConfigError, DecodeError
from dnft.timeline import MAX_INDEXED_DISTANCE, hamming, hash_bands
from publisher.api.curate_auth import CurateAuth, hash_password, same_origin, verify_password
from regenerator.guardrails import ImageLimits, check_image, check_metadata, measure_png
from regenerator.renderers import ProceduralRenderer, RenderRequest, encode_png
from tests.support.rules import SAMPLE

LIMITS = ImageLimits(size=64, min_entropy_bits=0.5, min_stddev=2.0)


def art(token: int = 1, stage: str = "egg", size: int = 64) -> bytes:
    renderer = ProceduralRenderer(stages=["egg", "kid"], buckets=["none"])
    request = RenderRequest(
        token_id=token, traits={"fed": "1"}, stage=stage, bucket="none", seed=99, size=size
    )
    return renderer.render(request).png


def flat(value: int, size: int = 64, noise: int = 0) -> bytes:
    rng = np.random.default_rng(1)
    pixels = np.full((size, size, 3), value, dtype=np.int16)
    if noise:
        pixels += rng.integers(-noise, noise + 1, size=pixels.shape)
    return encode_png(np.clip(pixels, 0, 255).astype(np.uint8))


def checks(png: bytes, size: int = 64) -> list[str]:
    _, failures = check_image(png, width=size, height=size, limits=LIMITS)
    return [f.check for f in failures]


class TestImageGuardrails:
    """Blank, near-uniform, wrong-size and non-PNG renders fail; real art passes."""

    def test_real_art_passes(self) -> None:
        assert checks(art()) == []

    def test_blank_image_fails(self) -> None:
        facts, failures = check_image(flat(0), width=64, height=64, limits=LIMITS)
        assert [f.check for f in failures] == ["blank"]
        assert facts is not None
        assert facts.entropy_bits == 0.0
        assert facts.stddev == 0.0
        assert "near-uniform" in failures[0].reason

    def test_near_uniform_image_fails(self) -> None:
        # One grey with +-1 noise: some entropy, almost no deviation.
        assert checks(flat(128, noise=1)) == ["blank"]

    def test_wrong_size_fails(self) -> None:
        assert checks(art(size=128)) == ["size"]

    def test_renderer_misreporting_its_size_fails(self) -> None:
        _, failures = check_image(art(), width=32, height=32, limits=LIMITS)
        assert [f.check for f in failures] == ["size"]

    @pytest.mark.parametrize(
        "data",
        [b"", b"GIF89a....", b"\x89PNG\r\n\x1a\n" + b"\0" * 40],
        ids=["empty", "gif", "truncated"],
    )
    def test_not_a_png_fails(self, data: bytes) -> None:
        facts, failures = check_image(data, width=64, height=64, limits=LIMITS)
        assert facts is None
        assert [f.check for f in failures] == ["format"]

    def test_jpeg_is_refused(self) -> None:
        out = io.BytesIO()
        Image.open(io.BytesIO(art())).save(out, format="JPEG")
        assert checks(out.getvalue()) == ["format"]


class TestPerceptualHash:
    """The dHash is stable under re-encoding and resizing, and far apart for other art."""

    def test_same_art_re_encoded_and_resized_is_near(self) -> None:
        original = art(size=256)
        scaled = Image.open(io.BytesIO(original)).resize((64, 64), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        scaled.save(out, format="PNG", compress_level=9)
        assert hamming(measure_png(original).phash, measure_png(out.getvalue()).phash) <= 2

    def test_different_art_is_far(self) -> None:
        a = measure_png(art(stage="egg")).phash
        b = measure_png(flat(0, noise=0)).phash
        c = measure_png(art(stage="kid")).phash
        assert hamming(a, b) > MAX_INDEXED_DISTANCE
        assert hamming(a, c) > MAX_INDEXED_DISTANCE

    def test_bands_cover_the_hash(self) -> None:
        h = measure_png(art()).phash
        bands = hash_bands(h)
        assert len(bands) == 4
        assert all(0 <= b < 1 << 16 for b in bands)
        joined = 0
        for b in bands:
            joined = (joined << 16) | b
        assert joined == h & (2**64 - 1)

    def test_within_three_bits_share_a_band(self) -> None:
        h = measure_png(art()).phash & (2**64 - 1)
        for flips in ([0, 17, 40], [5, 6, 7], [63, 47, 31]):
            other = h
            for bit in flips:
                other ^= 1 << bit
            assert hamming(h, other) == 3
            assert any(a == b for a, b in zip(hash_bands(h), hash_bands(other), strict=True))


class TestMetadataGuardrail:
    """A document that fails the ERC-721 schema is refused with the failing path."""

    def test_bad_metadata(self) -> None:
        failures = check_metadata({"name": "x", "image": "y", "attributes": []})
        assert [f.check for f in failures] == ["metadata"]
        assert "description" in failures[0].reason

    def test_negative_seed(self) -> None:
        doc = {
            "name": "x",
            "description": "",
            "image": "y",
            "attributes": [],
            "provenance": {
                "renderer": "r",
                "renderer_version": "1",
                "seed": -1,
                "state_hash": "0" * 64,
                "image_sha256": "0" * 64,
            },
        }
        failures = check_metadata(doc)
        assert "provenance/seed" in failures[0].reason


class TestSeeds:
    """Retries use the next seeds; a re-roll gets a seed away from the job's."""

    def test_attempt_seeds(self) -> None:
        assert [attempt_seed(10, a) for a in range(3)] == [10, 11, 12]
        assert attempt_seed(MAX_SEED, 1) == 0

    def test_reroll_seed(self) -> None:
        seed = reroll_seed(10, 5)
        assert 0 <= seed <= MAX_SEED
        assert seed not in (10, 11, 12)
        assert reroll_seed(10, 5) == seed
        assert reroll_seed(10, 6) != seed


class TestCollectionCuration:
    """publish and guardrails validate in the rules file and name the key."""

    def test_defaults(self) -> None:
        c = collection_from_mapping(SAMPLE)
        assert c.publish == "auto"
        assert c.guardrails.enabled
        assert c.guardrails.duplicate_distance is None
        assert c.guardrails.max_attempts == 3

    def test_review(self) -> None:
        raw = SAMPLE | {"publish": "review", "guardrails": {"duplicate_distance": 2}}
        c = collection_from_mapping(raw)
        assert c.publish == "review"
        assert c.guardrails.duplicate_distance == 2

    @pytest.mark.parametrize(
        ("change", "key"),
        [
            ({"publish": "later"}, "publish"),
            ({"guardrails": {"duplicate_distance": 9}}, "guardrails.duplicate_distance"),
            ({"guardrails": {"max_attempts": 0}}, "guardrails.max_attempts"),
            ({"guardrails": {"min_entropy_bits": 9}}, "guardrails.min_entropy_bits"),
            ({"guardrails": {"duplicate_of": ["nope"]}}, "guardrails.duplicate_of"),
            ({"guardrails": {"typo": 1}}, "guardrails.typo"),
            ({"renderer": {"kind": "procedural", "lora": "x.safetensors"}}, "renderer"),
        ],
    )
    def test_errors_name_the_key(self, change: dict[str, Any], key: str) -> None:
        raw = copy.deepcopy(SAMPLE) | change
        with pytest.raises(ConfigError) as info:
            collection_from_mapping(raw)
        assert key in info.value.key


BASE = {
    "networks": [{"name": "local", "chain_id": 31337, "rpc_urls": ["http://127.0.0.1:1"]}],
    "kafka": {"bootstrap_servers": ["127.0.0.1:9092"]},
    "postgres": {"dsn": "postgresql://x@127.0.0.1/x"},
}


class TestCurateSettings:
    """api.curate needs credentials when enabled; errors name the key."""

    def test_enabled_without_credentials(self) -> None:
        with pytest.raises(ConfigError, match="needs credentials") as info:
            settings_from_mapping(BASE | {"api": {"curate": {"enabled": True}}}, {})
        assert "api.curate" in info.value.key

    def test_bad_password_hash(self) -> None:
        users = [{"name": "ann", "password_hash": "plaintext"}]
        with pytest.raises(ConfigError) as info:
            settings_from_mapping(BASE | {"api": {"curate": {"users": users}}}, {})
        assert "api.curate.users" in info.value.key

    def test_token_and_users(self) -> None:
        users = [{"name": "ann", "password_hash": hash_password("pw", iterations=1000)}]
        curate = {"enabled": True, "token_env": "CURATE_TOKEN", "users": users}
        s = settings_from_mapping(BASE | {"api": {"curate": curate}}, {})
        assert s.api.curate.users[0].name == "ann"


class TestAuthHelpers:
    """Passwords, tokens, CSRF tokens and origins are checked strictly."""

    def test_password_hash_round_trip(self) -> None:
        encoded = hash_password("s3cret", iterations=1000)
        assert verify_password("s3cret", encoded)
        assert not verify_password("s3cret ", encoded)
        assert not verify_password("s3cret", "garbage")
        assert encoded != hash_password("s3cret", iterations=1000)  # salted

    def _auth(self) -> CurateAuth:
        users = {"ann": hash_password("pw", iterations=1000)}
        return CurateAuth(token="t" * 32, token_curator="bot", users=users)

    @staticmethod
    def basic(user: str, password: str) -> str:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def test_authenticate(self) -> None:
        auth = self._auth()

        def who(header: str | None) -> Any:
            return asyncio.run(auth.authenticate(header))

        assert who("Bearer " + "t" * 32).curator == "bot"
        assert who("bearer " + "t" * 32).via == "bearer"
        assert who(self.basic("ann", "pw")).curator == "ann"
        assert who(self.basic("ann", "pw")).via == "basic"  # remembered: same answer
        for bad in (
            None,
            "",
            "Bearer",
            "Bearer " + "t" * 31,
            "Bearer " + "t" * 33,
            self.basic("ann", "wrong"),
            self.basic("bob", "pw"),
            "Basic !!!notbase64",
            "Basic " + base64.b64encode(b"no-colon").decode(),
            "Digest abc",
        ):
            assert who(bad) is None, bad

    def test_csrf(self) -> None:
        auth = self._auth()
        token = auth.csrf_token("ann", "nonce-1")
        assert auth.csrf_valid("ann", "nonce-1", token)
        assert not auth.csrf_valid("bob", "nonce-1", token)
        assert not auth.csrf_valid("ann", "nonce-2", token)
        assert not auth.csrf_valid("ann", None, token)
        assert not auth.csrf_valid("ann", "nonce-1", None)
        # Another configuration (another secret) signs differently.
        other = CurateAuth(token="u" * 32, token_curator="bot", users={})
        assert other.csrf_token("ann", "nonce-1") != token

    def test_same_origin(self) -> None:
        host = "127.0.0.1:8000"
        assert same_origin(host, "http://127.0.0.1:8000", None)
        assert same_origin(host, None, "http://127.0.0.1:8000/curate")
        assert not same_origin(host, "http://evil.example", None)
        assert not same_origin(host, "null", "http://127.0.0.1:8000/curate")
        assert not same_origin(host, None, None)
        assert not same_origin(host, "http://127.0.0.1:8001", None)
        assert not same_origin(host, "javascript://127.0.0.1:8000", None)


class TestMeasureWithPixels:
    """Measuring from the renderer's pixels gives the same facts as decoding the PNG."""

    def test_same_facts_and_header_checked(self) -> None:
        renderer = ProceduralRenderer()
        request = RenderRequest(
            token_id=5, traits={"fed": 2}, stage="sprout", bucket="mid", seed=9, prompt="p", size=64
        )
        result = renderer.render(request)
        assert result.pixels is not None
        assert measure_png(result.png, result.pixels) == measure_png(result.png)
        with pytest.raises(DecodeError, match="header says 64x64"):
            measure_png(result.png, result.pixels[:32])
