"""What every blob store must do, checked the same way for each backend (local files, S3)."""

from __future__ import annotations

import hashlib

from dnft.storage import BlobStore, StoredBlob, cidv1_raw


def stored(store: BlobStore, data: bytes, content_type: str) -> StoredBlob:
    """``data`` put into ``store`` and read back: the blob is named by its sha256 and CID,
    exists, and reads back byte for byte. Returns it, for the backend's own checks."""
    blob = store.put(data, content_type)
    sha = hashlib.sha256(data).hexdigest()
    assert blob.sha256 == sha
    assert blob.cid == cidv1_raw(data)
    assert store.exists(sha)
    assert store.get(sha) == data
    return blob
