"""Waiting updates -> the contract calls that announce them (pure).

A ``CallSpec`` is one configured call: an ABI function and how its arguments are built from
the waiting updates (``args``, a closed set, see ``dnft.config.pusher.CALL_SHAPES``):

- ``range``: ``f(from, to)`` per run of consecutive ids (``max_range_size`` ids at most), e.g.
  ``refreshMetadata`` or OpenZeppelin's ``emitBatchMetadataUpdate``;
- ``id``: ``f(id)`` per token;
- ``ids``: ``f(ids)``, ``max_per_transaction`` ids per call;
- ``id_uri``: ``f(id, uri)`` per token, e.g. ``updateTokenURI`` or ERC-1155 ``setURI``;
- ``ids_uris``: ``f(ids, uris)``, ``max_per_transaction`` ids per call, e.g. ``setTokenURIs``.

A URI is ``uri_template`` filled with the token's newest waiting version (``{cid}``,
``{token_id}``, ``{version}``); older waiting versions of a token are covered by the same push:
they are superseded. The named modes are fixed specs (``erc4906``: ``refreshMetadata`` over
ranges; ``token-uri``: ``setTokenURIs`` over lists).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from eth_abi.abi import encode
from eth_utils.abi import function_signature_to_4byte_selector

from dnft.config.pusher import CALL_SHAPES, MODE_CALLS, URI_SHAPES, CallShape, canonical_signature
from publisher.pusher.coalesce import chunks, coalesce
from publisher.pusher.rows import PlannedPush, WaitingUpdate

REFRESH_METADATA: Final = function_signature_to_4byte_selector("refreshMetadata(uint256,uint256)")
SET_TOKEN_URIS: Final = function_signature_to_4byte_selector("setTokenURIs(uint256[],string[])")

# What the outbox records as a push's mode (its table allows these two): whether the call
# writes URIs on chain or only announces that metadata changed.
OutboxMode = Literal["erc4906", "token-uri"]


@dataclass(frozen=True, slots=True)
class CallSpec:
    """One configured announcing call; ``signature`` is canonical (checked against ``args``)."""

    signature: str
    args: CallShape
    uri_template: str = "ipfs://{cid}"

    @classmethod
    def of(cls, function: str, args: CallShape, uri_template: str = "ipfs://{cid}") -> CallSpec:
        """A spec from a signature as written; raises ValueError when its parameters do not
        take what ``args`` passes."""
        return cls(canonical_signature(function, args), args, uri_template)

    @classmethod
    def for_mode(cls, mode: str, uri_template: str = "ipfs://{cid}") -> CallSpec:
        """The fixed call of a named mode (``erc4906`` or ``token-uri``)."""
        function, args = MODE_CALLS[mode]
        return cls(function, args, uri_template)

    @property
    def selector(self) -> bytes:
        return function_signature_to_4byte_selector(self.signature)

    @property
    def outbox_mode(self) -> OutboxMode:
        return "token-uri" if self.args in URI_SHAPES else "erc4906"

    def calldata(self, *values: object) -> bytes:
        return self.selector + encode(list(CALL_SHAPES[self.args]), list(values))

    def uri(self, update: WaitingUpdate) -> str:
        return self.uri_template.format(
            cid=update.metadata_cid, token_id=update.token_id, version=update.version
        )


def plan_calls(
    spec: CallSpec,
    waiting: Sequence[WaitingUpdate],
    *,
    max_range_size: int,
    max_per_transaction: int,
    max_pushes: int | None = None,
) -> list[PlannedPush]:
    """The pushes announcing ``waiting``, in token order; each covers every waiting update of
    the tokens it names, so each update is announced exactly once. Only the first
    ``max_pushes`` are built (the rate cap's budget): a backlog of thousands of tokens with a
    call per token costs a few encodings per pass, not thousands."""
    by_token: dict[int, list[WaitingUpdate]] = {}
    for update in waiting:
        by_token.setdefault(update.token_id, []).append(update)

    def newest_uri(token: int) -> str:
        return spec.uri(max(by_token[token], key=lambda u: u.version))

    def push(ids: Sequence[int], calldata: bytes) -> PlannedPush:
        covered = [u for t in ids for u in by_token[t]]
        return PlannedPush(ids[0], ids[-1], covered, calldata)

    tokens = sorted(by_token)
    if spec.args == "range":
        return [
            push(range(r.first, r.last + 1), spec.calldata(r.first, r.last))
            for r in coalesce(tokens, max_range_size)[:max_pushes]
        ]
    build: dict[str, Callable[[Sequence[int]], bytes]] = {
        "id": lambda ids: spec.calldata(ids[0]),
        "id_uri": lambda ids: spec.calldata(ids[0], newest_uri(ids[0])),
        "ids": lambda ids: spec.calldata(list(ids)),
        "ids_uris": lambda ids: spec.calldata(list(ids), [newest_uri(t) for t in ids]),
    }
    size = 1 if spec.args in ("id", "id_uri") else max_per_transaction
    return [push(ids, build[spec.args](ids)) for ids in chunks(tokens, size)[:max_pushes]]


def refresh_metadata(first: int, last: int) -> bytes:
    return CallSpec.for_mode("erc4906").calldata(first, last)


def set_token_uris(token_ids: Sequence[int], uris: Sequence[str]) -> bytes:
    return CallSpec.for_mode("token-uri").calldata(list(token_ids), list(uris))


def plan_erc4906(waiting: Sequence[WaitingUpdate], max_range_size: int) -> list[PlannedPush]:
    """Mode ``erc4906``: ``refreshMetadata(from, to)`` per range of ``coalesce``."""
    spec = CallSpec.for_mode("erc4906")
    return plan_calls(spec, waiting, max_range_size=max_range_size, max_per_transaction=1)


def plan_token_uri(
    waiting: Sequence[WaitingUpdate], max_per_transaction: int, uri_template: str
) -> list[PlannedPush]:
    """Mode ``token-uri``: ``setTokenURIs`` batches in token order, each token with its newest
    version's URI."""
    spec = CallSpec.for_mode("token-uri", uri_template)
    return plan_calls(spec, waiting, max_range_size=1, max_per_transaction=max_per_transaction)
