"""Content identifiers computed locally: sha256 and IPFS CIDv1 (raw codec, sha2-256).

A CIDv1 here is ``b`` + base32 (RFC 4648, lower case, no padding) of
``varint(1) || varint(0x55 raw) || varint(0x12 sha2-256) || varint(32) || digest``: the CID of
the bytes as one IPFS block, as ``ipfs block put --cid-codec raw`` computes, and as ``ipfs add
--cid-version 1`` (raw leaves) computes for a file that fits in one chunk (256 KiB in kubo's
default profile, 1 MiB in ``unixfs-v1-2025``). ``ipfs add`` chunks a larger file into a DAG with
a different (``bafybei...``) CID: pin such files as one raw block (kubo and bitswap cap blocks
at 1-2 MiB, by version) or record the DAG CID the pinning service returns. Pure functions.
"""

from __future__ import annotations

import base64
import hashlib

from dnft.errors import DnftError

CID_VERSION = 1
RAW_CODEC = 0x55
SHA2_256 = 0x12
SHA256_LENGTH = 32
MULTIBASE_BASE32 = "b"
# varint(1) varint(0x55) varint(0x12) varint(32): all below 0x80, so one byte each.
_RAW_SHA256_PREFIX = bytes((CID_VERSION, RAW_CODEC, SHA2_256, SHA256_LENGTH))


class CIDError(DnftError, ValueError):
    """A string is not a CIDv1 with the raw codec and a sha2-256 multihash."""


def sha256_hex(data: bytes) -> str:
    """Lower-case hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def cid_from_digest(digest: bytes) -> str:
    """The raw CIDv1 for a 32-byte sha256 digest. Raises ValueError for another length."""
    if len(digest) != SHA256_LENGTH:
        raise ValueError(f"a sha256 digest has 32 bytes, got {len(digest)}")
    encoded = base64.b32encode(_RAW_SHA256_PREFIX + digest).decode("ascii")
    return MULTIBASE_BASE32 + encoded.rstrip("=").lower()


def cid_from_sha256(sha256: str) -> str:
    """The raw CIDv1 for a hex sha256. Raises ValueError for anything but 64 hex digits."""
    if len(sha256) != 2 * SHA256_LENGTH:
        raise ValueError(f"a sha256 hex digest has 64 characters, got {len(sha256)}")
    return cid_from_digest(bytes.fromhex(sha256))


def cidv1_raw(data: bytes) -> str:
    """The CIDv1 (raw codec, sha2-256, base32) of ``data`` as a single IPFS block."""
    return cid_from_digest(hashlib.sha256(data).digest())


def sha256_from_cid(cid: str) -> str:
    """The hex sha256 inside a raw sha2-256 CIDv1 (base32). Raises CIDError otherwise."""
    if not cid.startswith(MULTIBASE_BASE32):
        raise CIDError(f"not a base32 CIDv1 (expected prefix 'b'): {cid[:16]!r}")
    body = cid[1:].upper()
    try:
        raw = base64.b32decode(body + "=" * (-len(body) % 8))
    except ValueError as exc:
        raise CIDError(f"invalid base32 in CID {cid[:16]!r}...: {exc}") from None
    if len(raw) != len(_RAW_SHA256_PREFIX) + SHA256_LENGTH or not raw.startswith(
        _RAW_SHA256_PREFIX
    ):
        raise CIDError(f"not a raw sha2-256 CIDv1: {cid[:16]!r}...")
    return raw[len(_RAW_SHA256_PREFIX) :].hex()
