"""JSON-RPC transport for the indexer's hot path (raw aiohttp + orjson).

``RpcClient`` (retry, failover, in-flight cap), the provider error taxonomy, and bulk reads
(``iter_logs``, ``get_block_headers``). Implementation lives in the submodules.
"""

from dnft.rpc.client import RetryPolicy, RpcClient, redact_url
from dnft.rpc.errors import (
    BlockNotFoundError,
    RangeTooLargeError,
    RpcGiveUpError,
    RpcHttpError,
    RpcNodeError,
    TransientRpcError,
    classify_error,
)
from dnft.rpc.logs import LogChunk, get_block_headers, iter_logs
from dnft.rpc.types import Header, RawLog, RpcObserver

__all__ = [
    "BlockNotFoundError",
    "Header",
    "LogChunk",
    "RangeTooLargeError",
    "RawLog",
    "RetryPolicy",
    "RpcClient",
    "RpcGiveUpError",
    "RpcHttpError",
    "RpcNodeError",
    "RpcObserver",
    "TransientRpcError",
    "classify_error",
    "get_block_headers",
    "iter_logs",
    "redact_url",
]
