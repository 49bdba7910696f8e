"""The local content-addressed blob store and the async wrapper."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dnft.storage import (
    AsyncBlobStore,
    BlobIntegrityError,
    BlobNotFoundError,
    LocalBlobStore,
    S3BlobStore,
    StorageError,
    open_blob_store,
)
from tests.support.blobs import stored

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


class TestLocalBlobStore:
    """Blobs as sharded files, written atomically, verified on read."""

    def test_round_trip(self, tmp_path: Path) -> None:
        blob = stored(LocalBlobStore(tmp_path), PNG, "image/png")
        sha = blob.sha256
        assert blob.size == len(PNG)
        assert blob.content_type == "image/png"
        assert blob.uri == (tmp_path / sha[:2] / sha[2:4] / sha).resolve().as_uri()

    def test_put_is_idempotent_and_leaves_no_temp_files(self, tmp_path: Path) -> None:
        store = LocalBlobStore(tmp_path)
        first = store.put(PNG, "image/png")
        path = store.path(first.sha256)
        mtime = path.stat().st_mtime_ns
        assert store.put(PNG, "image/png") == first
        assert path.stat().st_mtime_ns == mtime  # the second put wrote nothing
        assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [first.sha256]

    def test_concurrent_puts_of_the_same_bytes(self, tmp_path: Path) -> None:
        store = LocalBlobStore(tmp_path)
        with ThreadPoolExecutor(8) as pool:
            blobs = list(pool.map(lambda _: store.put(PNG, "image/png"), range(32)))
        assert len(set(blobs)) == 1
        assert store.get(blobs[0].sha256) == PNG
        assert not list(tmp_path.rglob(".tmp-*"))

    def test_empty_blob(self, tmp_path: Path) -> None:
        store = LocalBlobStore(tmp_path, fsync=False)
        blob = store.put(b"", "application/octet-stream")
        assert store.get(blob.sha256) == b""

    def test_missing_blob(self, tmp_path: Path) -> None:
        store = LocalBlobStore(tmp_path)
        assert not store.exists("0" * 64)
        with pytest.raises(BlobNotFoundError, match=r"0{64}"):
            store.get("0" * 64)

    def test_corrupt_blob_is_detected(self, tmp_path: Path) -> None:
        store = LocalBlobStore(tmp_path)
        blob = store.put(PNG, "image/png")
        store.path(blob.sha256).write_bytes(PNG[:-1] + b"x")
        with pytest.raises(BlobIntegrityError, match="hashes to"):
            store.get(blob.sha256)

    def test_a_truncated_file_is_rewritten_by_the_next_put(self, tmp_path: Path) -> None:
        store = LocalBlobStore(tmp_path)
        blob = store.put(PNG, "image/png")
        store.path(blob.sha256).write_bytes(PNG[:10])
        store.put(PNG, "image/png")
        assert store.get(blob.sha256) == PNG

    @pytest.mark.parametrize("name", ["../../etc/passwd", "ABCD" * 16, "a" * 63, ""])
    def test_names_must_be_sha256_hex(self, tmp_path: Path, name: str) -> None:
        store = LocalBlobStore(tmp_path)
        with pytest.raises(ValueError, match="sha256"):
            store.get(name)
        with pytest.raises(ValueError, match="sha256"):
            store.exists(name)

    def test_unwritable_root_is_a_storage_error(self, tmp_path: Path) -> None:
        blocker = tmp_path / "file"
        blocker.write_bytes(b"")
        with pytest.raises(StorageError, match="cannot store"):
            LocalBlobStore(blocker / "root").put(PNG, "image/png")


class TestAsyncBlobStore:
    """The async wrapper runs the blocking store off the event loop."""

    async def test_round_trip(self, tmp_path: Path) -> None:
        store = AsyncBlobStore(LocalBlobStore(tmp_path))
        blobs = await asyncio.gather(*(store.put(bytes([i]) * 100, "x/y") for i in range(10)))
        assert await store.exists(blobs[3].sha256)
        assert await store.get(blobs[3].sha256) == bytes([3]) * 100
        with pytest.raises(BlobNotFoundError):
            await store.get("f" * 64)


class TestOpenBlobStore:
    """Locations name a backend."""

    def test_locations(self, tmp_path: Path) -> None:
        assert isinstance(open_blob_store(str(tmp_path)), LocalBlobStore)
        local = open_blob_store(tmp_path.as_uri())
        assert isinstance(local, LocalBlobStore)
        assert local.root == tmp_path
        s3 = open_blob_store("s3://bucket/images", endpoint_url="http://127.0.0.1:1")
        assert isinstance(s3, S3BlobStore)
        assert s3.uri("a" * 64) == f"s3://bucket/images/aa/aa/{'a' * 64}"
        with pytest.raises(ValueError, match="scheme"):
            open_blob_store("ftp://host/x")
