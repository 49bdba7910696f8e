"""Content-addressed blob storage for rendered images and metadata JSON.

A blob's name is the sha256 of its bytes, so ``put`` is idempotent (the same bytes land on the
same name; a second put writes nothing) and ``get`` verifies what it reads. Two backends share
one ``BlobStore`` Protocol: a local directory (the default; sharded ``ab/cd/<sha256>``, atomic
and durable writes) and any S3-compatible service (boto3 with an ``endpoint_url``). Both block
on I/O: async code wraps a store in ``AsyncBlobStore``, which runs each call in a thread.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from dnft.config import Settings
from dnft.errors import DnftError, MissingDependencyError, ServiceError
from dnft.storage.cid import cid_from_digest

_SHA256 = re.compile(r"[0-9a-f]{64}")


class StorageError(ServiceError):
    """The backend failed (disk error, S3 unreachable or refusing); the message says which."""


class BlobNotFoundError(DnftError, LookupError):
    """No blob with this sha256 is stored."""


class BlobIntegrityError(StorageError):
    """A stored blob no longer hashes to its name (bit rot, or someone wrote over it)."""


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """Where a blob was stored: its sha256 (hex), raw CIDv1, backend URI and size in bytes."""

    sha256: str
    cid: str
    uri: str
    size: int
    content_type: str


class BlobStore(Protocol):
    """A content-addressed store. Every method blocks on disk or network I/O.

    ``put`` returns once the blob is durable (fsynced, or acknowledged by S3), so a caller may
    commit its Kafka offset afterwards; it is idempotent and safe to race. ``get`` raises
    BlobNotFoundError or BlobIntegrityError; every method raises ValueError for a malformed
    sha256 and StorageError when the backend fails.
    """

    def put(self, data: bytes, content_type: str) -> StoredBlob: ...

    def get(self, sha256: str) -> bytes: ...

    def exists(self, sha256: str) -> bool: ...

    def uri(self, sha256: str) -> str: ...


def check_sha256(sha256: str) -> str:
    """``sha256`` if it is 64 lower-case hex digits, else ValueError (names become paths)."""
    if not _SHA256.fullmatch(sha256):
        raise ValueError(f"not a lower-case hex sha256: {sha256[:80]!r}")
    return sha256


def shard(sha256: str) -> str:
    """``ab/cd/abcd...``: two levels of 256 directories keep each directory small."""
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"


def _verified(data: bytes, sha256: str, where: str) -> bytes:
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise BlobIntegrityError(f"blob {where} hashes to {actual}, not its name {sha256}")
    return data


class LocalBlobStore:
    """Blobs as files under ``root``/ab/cd/<sha256>.

    A put writes a temporary file in the target directory, fsyncs it, renames it into place and
    fsyncs the directory: readers never see a partial blob, and a crash leaves at worst a
    ``.tmp-*`` file behind. ``fsync=False`` skips both fsyncs (tests, throwaway caches).
    """

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = root
        self.fsync = fsync

    def path(self, sha256: str) -> Path:
        return self.root / shard(check_sha256(sha256))

    def uri(self, sha256: str) -> str:
        return self.path(sha256).resolve().as_uri()

    def put(self, data: bytes, content_type: str) -> StoredBlob:
        digest = hashlib.sha256(data).digest()
        sha256 = digest.hex()
        path = self.path(sha256)
        try:
            if not (path.is_file() and path.stat().st_size == len(data)):
                self._write(path, data)
        except OSError as exc:
            raise StorageError(f"cannot store blob {sha256} under {self.root}: {exc}") from exc
        return StoredBlob(
            sha256, cid_from_digest(digest), self.uri(sha256), len(data), content_type
        )

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                if self.fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        if self.fsync:
            # The rename is durable only once the directory entry is on disk.
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def get(self, sha256: str) -> bytes:
        path = self.path(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BlobNotFoundError(f"no blob {sha256} under {self.root}") from None
        except OSError as exc:
            raise StorageError(f"cannot read blob {sha256} at {path}: {exc}") from exc
        return _verified(data, sha256, f"at {path}")

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()


class S3BlobStore:
    """Blobs as objects ``<prefix>ab/cd/<sha256>`` in an S3-compatible bucket.

    Needs ``boto3`` (not a dnft dependency: install it where this backend is used). The client
    retries throttling and transient errors itself (botocore "standard" mode); the upload sends
    its sha256 so the service rejects bytes damaged on the way (AWS S3 checks it; moto does
    not). A put first asks whether the object exists (HEAD), so re-rendering the same image
    uploads nothing. Credentials come from the usual AWS chain unless given. The bucket must
    exist. Raises MissingDependencyError without boto3.
    """

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region_name: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_attempts: int = 5,
        client: Any = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        if client is None:
            try:
                import boto3  # type: ignore[import-untyped]
                from botocore.config import Config  # type: ignore[import-untyped]
            except ImportError as exc:
                raise MissingDependencyError(
                    "the S3 blob store needs boto3: pip install boto3"
                ) from exc
            client = boto3.session.Session().client(
                "s3",
                endpoint_url=endpoint_url,
                region_name=region_name,
                aws_access_key_id=aws_access_key_id,
                aws_secret_access_key=aws_secret_access_key,
                config=Config(
                    connect_timeout=connect_timeout,
                    read_timeout=read_timeout,
                    retries={"max_attempts": max_attempts, "mode": "standard"},
                ),
            )
        self._client = client

    def key(self, sha256: str) -> str:
        return self.prefix + shard(check_sha256(sha256))

    def uri(self, sha256: str) -> str:
        return f"s3://{self.bucket}/{self.key(sha256)}"

    def put(self, data: bytes, content_type: str) -> StoredBlob:
        digest = hashlib.sha256(data).digest()
        sha256 = digest.hex()
        key = self.key(sha256)
        if not self._head(key, sha256):
            try:
                self._client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=data,
                    ContentType=content_type,
                    ChecksumSHA256=base64.b64encode(digest).decode("ascii"),
                    Metadata={"sha256": sha256},
                )
            except Exception as exc:
                raise self._error("store", sha256, exc) from exc
        return StoredBlob(
            sha256, cid_from_digest(digest), self.uri(sha256), len(data), content_type
        )

    def get(self, sha256: str) -> bytes:
        key = self.key(sha256)
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=key)
            data: bytes = response["Body"].read()
        except Exception as exc:
            if _status(exc) == 404:
                raise BlobNotFoundError(f"no blob {sha256} in {self.uri(sha256)}") from None
            raise self._error("read", sha256, exc) from exc
        return _verified(data, sha256, f"in {self.uri(sha256)}")

    def exists(self, sha256: str) -> bool:
        return self._head(self.key(sha256), sha256)

    def _head(self, key: str, sha256: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if _status(exc) == 404:
                return False
            raise self._error("look up", sha256, exc) from exc
        return True

    def _error(self, verb: str, sha256: str, exc: Exception) -> StorageError:
        return StorageError(f"cannot {verb} blob {sha256} in s3://{self.bucket}: {exc}")


def _status(exc: Exception) -> int | None:
    """The HTTP status of a botocore ClientError (NoSuchKey on GET, bare 404 on HEAD)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status if isinstance(status, int) else None


class AsyncBlobStore:
    """A BlobStore for asyncio code: each call runs the blocking store in a worker thread."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store

    async def put(self, data: bytes, content_type: str) -> StoredBlob:
        return await asyncio.to_thread(self.store.put, data, content_type)

    async def get(self, sha256: str) -> bytes:
        return await asyncio.to_thread(self.store.get, sha256)

    async def exists(self, sha256: str) -> bool:
        return await asyncio.to_thread(self.store.exists, sha256)

    def uri(self, sha256: str) -> str:
        return self.store.uri(sha256)


def open_blob_store(location: str, **s3_options: Any) -> BlobStore:
    """A store from a location: ``s3://bucket/prefix`` (``s3_options`` go to S3BlobStore, e.g.
    ``endpoint_url``), ``file:///abs/dir`` or a plain directory path. Raises ValueError for
    another scheme, MissingDependencyError for S3 without boto3. Does no I/O."""
    parts = urlsplit(location)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ValueError(f"no bucket in {location!r}")
        return S3BlobStore(parts.netloc, prefix=parts.path.lstrip("/"), **s3_options)
    if parts.scheme == "file":
        return LocalBlobStore(Path(parts.path))
    if parts.scheme == "":
        return LocalBlobStore(Path(location))
    raise ValueError(f"unsupported blob store scheme {parts.scheme!r} in {location!r}")


def blob_store(settings: Settings) -> BlobStore:
    """The store ``regenerator.storage`` configures (does no I/O)."""
    storage = settings.regenerator.storage
    if storage.kind == "s3":
        assert storage.bucket is not None  # validated
        return S3BlobStore(
            storage.bucket,
            prefix=storage.prefix,
            endpoint_url=storage.endpoint_url,
            region_name=storage.region,
        )
    return LocalBlobStore(storage.path)
