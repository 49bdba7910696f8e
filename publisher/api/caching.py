"""HTTP caching: ETags, If-None-Match, Cache-Control values, and an in-memory blob cache.

Versions, images and their metadata are immutable (a version is never rewritten; a blob's name
is its sha256), so they are cached for a year with ``immutable``; a token's *current*
metadata changes when a new version appears, so it is cached briefly and revalidated by ETag.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from dnft.storage import AsyncBlobStore

IMMUTABLE = "public, max-age=31536000, immutable"


def etag_of_sha256(sha256: str) -> str:
    """The strong ETag of a content-addressed body: its sha256, quoted."""
    return f'"{sha256}"'


def etag_of(body: bytes) -> str:
    """A strong ETag for a body (its sha256, quoted): same bytes, same tag, on every replica."""
    return etag_of_sha256(hashlib.sha256(body).hexdigest())


def short_lived(max_age_s: int) -> str:
    return f"public, max-age={max_age_s}, must-revalidate" if max_age_s else "no-cache"


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """True when ``If-None-Match`` names ``etag`` (or is ``*``): answer 304 then.

    Comparison is weak, as RFC 9110 asks for If-None-Match: ``W/"x"`` matches ``"x"``.
    """
    if not if_none_match:
        return False
    wanted = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == wanted:
            return True
    return False


class BlobCache:
    """Reads blobs through ``store`` and keeps up to ``max_bytes`` of them in memory.

    Safe without invalidation: a blob's name is its content's hash. Blobs larger than an eighth
    of the budget are never kept (one huge image must not flush the rest). ``get`` does the
    store's blocking I/O in a thread and raises what the store raises (BlobNotFoundError,
    StorageError, BlobIntegrityError).
    """

    def __init__(self, store: AsyncBlobStore, max_bytes: int) -> None:
        self._store = store
        self._max_bytes = max_bytes
        self._blobs: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        # Reads that reached the store (misses): tests use it to prove a request read nothing.
        self.store_reads = 0

    @property
    def cached_bytes(self) -> int:
        return self._bytes

    async def get(self, sha256: str) -> bytes:
        data = self._blobs.get(sha256)
        if data is not None:
            self._blobs.move_to_end(sha256)
            return data
        self.store_reads += 1
        data = await self._store.get(sha256)
        if len(data) <= self._max_bytes // 8 and sha256 not in self._blobs:
            self._blobs[sha256] = data
            self._bytes += len(data)
            while self._bytes > self._max_bytes:
                _, evicted = self._blobs.popitem(last=False)
                self._bytes -= len(evicted)
        return data


def image_content_type(data: bytes) -> str:
    """The media type of an image from its magic bytes (renderers write PNG; others are
    recognised so a future renderer's images are still labelled right)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    return "application/octet-stream"
