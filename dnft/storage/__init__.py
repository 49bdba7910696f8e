"""Content-addressed storage of rendered images and metadata: blob stores (``blobs``: local
directory or S3, behind one Protocol) and content identifiers (``cid``: sha256, CIDv1). Ground:
imports no daemon package; boto3 is imported only when an S3 store is opened."""

from dnft.storage.blobs import (
    AsyncBlobStore,
    BlobIntegrityError,
    BlobNotFoundError,
    BlobStore,
    LocalBlobStore,
    S3BlobStore,
    StorageError,
    StoredBlob,
    blob_store,
    check_sha256,
    open_blob_store,
    shard,
)
from dnft.storage.cid import (
    CIDError,
    cid_from_digest,
    cid_from_sha256,
    cidv1_raw,
    sha256_from_cid,
    sha256_hex,
)

__all__ = [
    "AsyncBlobStore",
    "BlobIntegrityError",
    "BlobNotFoundError",
    "BlobStore",
    "CIDError",
    "LocalBlobStore",
    "S3BlobStore",
    "StorageError",
    "StoredBlob",
    "blob_store",
    "check_sha256",
    "cid_from_digest",
    "cid_from_sha256",
    "cidv1_raw",
    "open_blob_store",
    "sha256_from_cid",
    "sha256_hex",
    "shard",
]
