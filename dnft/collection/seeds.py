"""Render seeds: where each render's randomness comes from, so any render can be repeated.

A token state's seed derives from the collection's salt, the token and the state hash; a render
that fails a guardrail is tried again with the next seed, and a curator's re-roll moves far away
from every seed the job tried.
"""

from __future__ import annotations

import hashlib

MAX_SEED = 2**63 - 1
_SEED_DOMAIN = b"dnft.seed.v1"
_REROLL_DOMAIN = b"dnft.reroll.v1"


def derive_seed(collection_salt: str, token_id: int, state_hash: str) -> int:
    """The render seed of a token state: 63 bits of sha256 over the salt, token and state.

    Same inputs give the same seed on every machine; a different salt per collection keeps two
    collections with equal token ids from sharing art. Raises ValueError for a negative token id.
    """
    if token_id < 0:
        raise ValueError(f"token_id must be >= 0, got {token_id}")
    digest = hashlib.sha256(
        b"\0".join(
            (_SEED_DOMAIN, collection_salt.encode(), str(token_id).encode(), state_hash.encode())
        )
    ).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def attempt_seed(job_seed: int, attempt: int) -> int:
    """The seed of render attempt ``attempt`` of a job (the next seed on each retry)."""
    return (job_seed + attempt) % (MAX_SEED + 1)


def reroll_seed(job_seed: int, candidate_id: int) -> int:
    """A new job seed for re-rolling a candidate: far from the old job's attempt seeds."""
    digest = hashlib.sha256(
        b"\0".join((_REROLL_DOMAIN, str(job_seed).encode(), str(candidate_id).encode()))
    ).digest()
    return int.from_bytes(digest[:8], "big") >> 1
