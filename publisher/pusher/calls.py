"""Waiting updates -> the contract calls that announce them (pure).

``erc4906``: ``refreshMetadata(from, to)`` per contiguous range (the contract emits
``MetadataUpdate`` for one token, ``BatchMetadataUpdate`` for more). ``token-uri``:
``setTokenURIs(ids, uris)`` with each token's newest URI, many tokens per transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from eth_abi.abi import encode
from eth_utils.abi import function_signature_to_4byte_selector

from publisher.pusher.coalesce import chunks, coalesce
from publisher.pusher.outbox import PlannedPush, WaitingUpdate

REFRESH_METADATA: Final = function_signature_to_4byte_selector("refreshMetadata(uint256,uint256)")
SET_TOKEN_URIS: Final = function_signature_to_4byte_selector("setTokenURIs(uint256[],string[])")


def refresh_metadata(first: int, last: int) -> bytes:
    return REFRESH_METADATA + encode(["uint256", "uint256"], [first, last])


def set_token_uris(token_ids: Sequence[int], uris: Sequence[str]) -> bytes:
    return SET_TOKEN_URIS + encode(["uint256[]", "string[]"], [list(token_ids), list(uris)])


def plan_erc4906(waiting: Sequence[WaitingUpdate], max_range_size: int) -> list[PlannedPush]:
    """One push per range of ``coalesce``; each covers every waiting update in its range."""
    by_token: dict[int, list[WaitingUpdate]] = {}
    for update in waiting:
        by_token.setdefault(update.token_id, []).append(update)
    pushes = []
    for r in coalesce(by_token, max_range_size):
        covered = [u for t in range(r.first, r.last + 1) for u in by_token[t]]
        pushes.append(PlannedPush(r.first, r.last, covered, refresh_metadata(r.first, r.last)))
    return pushes


def plan_token_uri(
    waiting: Sequence[WaitingUpdate], max_per_transaction: int, uri_template: str
) -> list[PlannedPush]:
    """``setTokenURIs`` batches in token order, each token with its newest version's URI
    (older waiting versions of it are covered by the same push: they are superseded)."""
    by_token: dict[int, list[WaitingUpdate]] = {}
    for update in waiting:
        by_token.setdefault(update.token_id, []).append(update)
    pushes = []
    for ids in chunks(sorted(by_token), max_per_transaction):
        uris = [
            uri_template.format(cid=max(by_token[t], key=lambda u: u.version).metadata_cid)
            for t in ids
        ]
        covered = [u for t in ids for u in by_token[t]]
        pushes.append(PlannedPush(ids[0], ids[-1], covered, set_token_uris(ids, uris)))
    return pushes
