"""JSON-RPC for the chain readers (indexer, oracle, pusher, audit): raw aiohttp + orjson.

``RpcClient`` (retry, failover, in-flight cap: ``client`` stacks ``layers`` over
``transport``), the provider error taxonomy (``errors``), bulk reads (``iter_logs``,
``get_block_headers``) and the Prometheus observer (``observe``). Callers import from here.
"""

from dnft.rpc.client import RpcClient
from dnft.rpc.errors import (
    BlockNotFoundError,
    RangeTooLargeError,
    ResponseTooLargeError,
    RpcGiveUpError,
    RpcHttpError,
    RpcNodeError,
    TransientRpcError,
    classify_error,
)
from dnft.rpc.layers import RetryPolicy
from dnft.rpc.logs import LogChunk, get_block_headers, iter_logs
from dnft.rpc.observe import PrometheusRpcObserver
from dnft.rpc.redact import redact_url, scrub_urls
from dnft.rpc.types import Header, RawLog, RpcObserver

__all__ = [
    "BlockNotFoundError",
    "Header",
    "LogChunk",
    "PrometheusRpcObserver",
    "RangeTooLargeError",
    "RawLog",
    "ResponseTooLargeError",
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
    "scrub_urls",
]
