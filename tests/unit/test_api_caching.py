"""ETags, If-None-Match, the immutable blob cache and image types."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from dnft.storage.blobs import AsyncBlobStore, BlobNotFoundError, LocalBlobStore
from publisher.api.caching import (
    BlobCache,
    etag_of,
    etag_of_sha256,
    image_content_type,
    not_modified,
    short_lived,
)


class TestEtags:
    """An ETag is the body's sha256; If-None-Match compares weakly, lists and * included."""

    def test_etag_is_the_sha256(self) -> None:
        body = b'{"name":"Critter #1"}'
        assert etag_of(body) == f'"{hashlib.sha256(body).hexdigest()}"'
        assert etag_of(body) == etag_of(bytes(body)), "same bytes, same tag"
        assert etag_of(body) != etag_of(body + b" ")

    @pytest.mark.parametrize(
        ("header", "matches"),
        [
            (None, False),
            ("", False),
            ('"abc"', True),
            ('W/"abc"', True),
            ('"x", "abc"', True),
            ('"x",W/"abc"', True),
            ("*", True),
            ('"abcd"', False),
            ("abc", False),
        ],
    )
    def test_if_none_match(self, header: str | None, matches: bool) -> None:
        assert not_modified(header, etag_of_sha256("abc")) is matches

    def test_cache_control(self) -> None:
        assert short_lived(60) == "public, max-age=60, must-revalidate"
        assert short_lived(0) == "no-cache"


class TestBlobCache:
    """Blobs are read once, kept within the byte budget, least recently used dropped first."""

    async def test_cache(self, tmp_path: Path) -> None:
        store = LocalBlobStore(tmp_path, fsync=False)
        blobs = [store.put(bytes([i]) * 100, "image/png").sha256 for i in range(5)]
        cache = BlobCache(AsyncBlobStore(store), max_bytes=2400)  # 300 B per blob at most
        assert await cache.get(blobs[0]) == bytes([0]) * 100
        assert await cache.get(blobs[0]) == bytes([0]) * 100
        assert cache.store_reads == 1
        for sha in blobs:
            await cache.get(sha)
        assert cache.store_reads == 5
        assert cache.cached_bytes == 500

        small = BlobCache(AsyncBlobStore(store), max_bytes=1600)  # 200 B per blob at most
        for sha in blobs[:3]:
            await small.get(sha)
        assert small.cached_bytes == 300
        big = store.put(b"x" * 1000, "image/png").sha256
        await small.get(big)
        await small.get(big)
        assert small.store_reads == 5, "a blob over an eighth of the budget is never kept"

        # Eviction: ten 150 B blobs in a 1,200 B budget keep the last eight.
        many = [store.put(bytes([i]) * 150, "image/png").sha256 for i in range(10)]
        lru = BlobCache(AsyncBlobStore(store), max_bytes=1200)
        for sha in many:
            await lru.get(sha)
        assert (lru.cached_bytes, lru.store_reads) == (1200, 10)
        await lru.get(many[-1])
        assert lru.store_reads == 10, "a recent blob is still cached"
        await lru.get(many[0])
        assert lru.store_reads == 11, "the oldest blob was dropped"
        with pytest.raises(BlobNotFoundError):
            await cache.get("ab" * 32)


class TestImageTypes:
    """Images are labelled by their magic bytes."""

    @pytest.mark.parametrize(
        ("data", "kind"),
        [
            (b"\x89PNG\r\n\x1a\n....", "image/png"),
            (b"\xff\xd8\xff\xe0....", "image/jpeg"),
            (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
            (b"GIF89a...", "image/gif"),
            (b"<svg onload=alert(1)>", "application/octet-stream"),
            (b"", "application/octet-stream"),
        ],
    )
    def test_magic(self, data: bytes, kind: str) -> None:
        assert image_content_type(data) == kind
