"""Shared types of the RPC layer: raw JSON-RPC shapes, kept as the node sent them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NotRequired, Protocol, TypeAlias, TypedDict

JsonValue: TypeAlias = Any
"""A decoded JSON value (orjson output). ``Any`` because JSON-RPC results are untyped."""

Params: TypeAlias = list[Any] | dict[str, Any]
"""JSON-RPC ``params``: positional list or named object."""


class RawLog(TypedDict):
    """One ``eth_getLogs`` entry exactly as the node sends it: every number a 0x hex string.

    No conversion happens on the hot path; ``indexer.decode`` reads these strings directly.
    ``blockNumber``/``blockHash``/``transactionHash``/``logIndex`` are ``None`` only for
    pending logs, which ``eth_getLogs`` over mined ranges never returns.
    """

    address: str
    topics: list[str]
    data: str
    blockNumber: str | None
    blockHash: str | None
    transactionHash: str | None
    transactionIndex: str | None
    logIndex: str | None
    removed: NotRequired[bool]
    blockTimestamp: NotRequired[str]  # newer nodes (anvil, geth >= 1.14) include it


@dataclass(frozen=True, slots=True)
class Header:
    """The block header fields the indexer needs to order events and detect reorgs."""

    number: int
    hash: str
    parent_hash: str
    timestamp: int


class RpcObserver(Protocol):
    """Metrics hook: called once per HTTP attempt (so retries and failovers are visible).

    ``method`` is the JSON-RPC method, or ``"batch:<method>"`` for a batch (first method).
    ``endpoint`` is the redacted URL. ``outcome`` is one of ``ok``, ``node_error``,
    ``node_transient``, ``rate_limited``, ``http_5xx``, ``http_error``, ``timeout``,
    ``connection``, ``bad_response``, ``cancelled`` (for a batch: the last non-ok item's).
    Must not block or raise.
    """

    def on_request(self, method: str, endpoint: str, seconds: float, outcome: str) -> None: ...
