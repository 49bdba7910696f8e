"""The S3 blob store against a real moto_server (an S3-compatible HTTP service)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dnft.devservices.moto import MotoService
from dnft.devservices.ports import free_port
from dnft.storage import (
    AsyncBlobStore,
    BlobIntegrityError,
    BlobNotFoundError,
    S3BlobStore,
    StorageError,
)
from tests.support.blobs import stored

BUCKET = "dnft-blobs"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoService]:
    service = MotoService(tmp_path_factory.mktemp("moto"))
    service.start()
    service.create_bucket(BUCKET)
    yield service
    service.stop()


def make_store(moto: MotoService, prefix: str = "art") -> S3BlobStore:
    return S3BlobStore(
        BUCKET,
        prefix=prefix,
        endpoint_url=moto.url,
        region_name="eu-west-2",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )


class TestS3BlobStore:
    """Blobs as objects under ``<prefix>/ab/cd/<sha256>``."""

    def test_round_trip(self, moto: MotoService) -> None:
        store = make_store(moto)
        blob = stored(store, PNG, "image/png")
        sha = blob.sha256
        assert blob.uri == f"s3://{BUCKET}/art/{sha[:2]}/{sha[2:4]}/{sha}"
        head = store._client.head_object(Bucket=BUCKET, Key=store.key(sha))
        assert head["ContentType"] == "image/png"
        assert head["Metadata"] == {"sha256": sha}

    def test_put_is_idempotent(self, moto: MotoService) -> None:
        store = make_store(moto, prefix="idem/")
        first = store.put(b"{}", "application/json")
        etag = store._client.head_object(Bucket=BUCKET, Key=store.key(first.sha256))["ETag"]
        assert store.put(b"{}", "application/json") == first
        listing = store._client.list_objects_v2(Bucket=BUCKET, Prefix="idem/")
        assert [o["Key"] for o in listing["Contents"]] == [store.key(first.sha256)]
        assert listing["Contents"][0]["ETag"] == etag

    def test_missing_blob(self, moto: MotoService) -> None:
        store = make_store(moto)
        assert not store.exists("0" * 64)
        with pytest.raises(BlobNotFoundError):
            store.get("0" * 64)

    def test_overwritten_object_is_detected(self, moto: MotoService) -> None:
        store = make_store(moto, prefix="corrupt")
        blob = store.put(PNG, "image/png")
        store._client.put_object(Bucket=BUCKET, Key=store.key(blob.sha256), Body=b"evil")
        with pytest.raises(BlobIntegrityError):
            store.get(blob.sha256)

    def test_missing_bucket_is_a_storage_error(self, moto: MotoService) -> None:
        store = S3BlobStore(
            "no-such-bucket",
            endpoint_url=moto.url,
            region_name="eu-west-2",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )
        with pytest.raises(StorageError, match="no-such-bucket"):
            store.put(PNG, "image/png")

    def test_unreachable_endpoint_is_a_storage_error(self) -> None:
        store = S3BlobStore(
            BUCKET,
            endpoint_url=f"http://127.0.0.1:{free_port()}",
            region_name="eu-west-2",
            aws_access_key_id="x",
            aws_secret_access_key="x",
            connect_timeout=0.5,
            max_attempts=1,
        )
        with pytest.raises(StorageError, match="cannot look up"):
            store.exists("a" * 64)

    async def test_async_wrapper(self, moto: MotoService) -> None:
        store = AsyncBlobStore(make_store(moto, prefix="async"))
        blob = await store.put(b"async bytes", "text/plain")
        assert await store.exists(blob.sha256)
        assert await store.get(blob.sha256) == b"async bytes"
