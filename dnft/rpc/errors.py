"""Provider error taxonomy and classification of JSON-RPC error objects.

Every provider words "your eth_getLogs range is too large" differently; the indexer only
needs three answers: split the range (``RangeTooLargeError``), retry later
(``TransientRpcError``), or fail (``RpcNodeError`` and the HTTP/give-up errors).
``classify_error`` maps an ``{"code", "message", "data"}`` object onto them. It is pure.
"""

from __future__ import annotations

import re
from typing import Any, Final

from dnft.errors import RpcError

__all__ = [
    "BlockNotFoundError",
    "RangeTooLargeError",
    "ResponseTooLargeError",
    "RpcGiveUpError",
    "RpcHttpError",
    "RpcNodeError",
    "TransientRpcError",
    "classify_error",
]

# Transient kinds after which the failover layer moves to the next endpoint. A 429 is not one
# of them: the endpoint is healthy, just asking us to slow down (Retry-After says how long).
FAILOVER_KINDS: Final = frozenset({"http_5xx", "timeout", "connection", "bad_response"})


class RpcCallError(RpcError):
    """An RPC error that names the call (``method``) and the endpoint it came from."""

    def __init__(self, text: str, *, method: str = "", endpoint: str = "") -> None:
        self.method = method
        self.endpoint = endpoint
        where = f" ({method} @ {endpoint})" if method or endpoint else ""
        super().__init__(f"{text}{where}")


class TransientRpcError(RpcCallError):
    """A failure that retrying (here or on another endpoint) may cure.

    ``kind`` is one of ``rate_limited``, ``http_5xx``, ``timeout``, ``connection``,
    ``bad_response`` (truncated or garbage body), ``node_transient`` (a JSON-RPC error
    that says "try again": rate limits, a lagging backend). ``retry_after`` is the server's
    Retry-After in seconds, when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        method: str = "",
        endpoint: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.kind = kind
        self.retry_after = retry_after
        super().__init__(message, method=method, endpoint=endpoint)

    @property
    def failover(self) -> bool:
        """True when another endpoint should be tried at once (the endpoint looks unhealthy)."""
        return self.kind in FAILOVER_KINDS


class RpcNodeError(RpcCallError):
    """The node answered a JSON-RPC error object that retrying will not fix."""

    def __init__(
        self,
        code: int | None,
        message: str,
        *,
        data: Any = None,
        method: str = "",
        endpoint: str = "",
    ) -> None:
        self.code = code
        self.message = message
        self.data = data
        super().__init__(f"node error {code}: {message}", method=method, endpoint=endpoint)


class RangeTooLargeError(RpcNodeError):
    """The provider refused an ``eth_getLogs`` range (too many blocks, results or bytes).

    ``suggested_to`` is the last block of a range the provider said would work, when it said
    one (Alchemy, Infura); ``max_range`` is the provider's fixed block-range cap, when the
    message states one ("limited to a 10,000 range", "maximum block range: 5000").
    """

    def __init__(
        self,
        code: int | None,
        message: str,
        *,
        suggested_to: int | None = None,
        max_range: int | None = None,
        data: Any = None,
        method: str = "",
        endpoint: str = "",
    ) -> None:
        self.suggested_to = suggested_to
        self.max_range = max_range
        super().__init__(code, message, data=data, method=method, endpoint=endpoint)


class ResponseTooLargeError(RangeTooLargeError):
    """The node's answer was longer than ``networks[].max_response_bytes`` (``limit``); it
    was cut off while arriving. For ``eth_getLogs`` it is a range refusal like "too many
    results" (``iter_logs`` splits the range); any other call fails: retrying cannot help."""

    def __init__(self, limit: int, *, method: str = "", endpoint: str = "") -> None:
        self.limit = limit
        text = f"response larger than {limit} bytes (networks[].max_response_bytes)"
        super().__init__(None, text, method=method, endpoint=endpoint)
        where = f" ({method} @ {endpoint})" if method or endpoint else ""
        self.args = (f"{text}{where}",)


class RpcHttpError(RpcCallError):
    """A non-retryable HTTP status without a JSON-RPC body (401, 403, 404...)."""

    def __init__(self, status: int, *, method: str, endpoint: str) -> None:
        self.status = status
        super().__init__(f"HTTP {status}", method=method, endpoint=endpoint)


class RpcGiveUpError(RpcError):
    """Retries or the time budget ran out; ``__cause__`` is the last transient error."""

    def __init__(
        self, method: str, endpoint: str, attempts: int, seconds: float, last: str
    ) -> None:
        self.method = method
        self.endpoint = endpoint
        self.attempts = attempts
        super().__init__(
            f"{method} gave up after {attempts} attempts in {seconds:.1f}s; "
            f"last endpoint {endpoint}: {last}"
        )


class BlockNotFoundError(RpcError):
    """The node has no block at this height (past its head, or a lagging backend)."""

    def __init__(self, number: int) -> None:
        self.number = number
        super().__init__(f"block {number} not found")


# --- classification -------------------------------------------------------------------------

# Shapes of "range too large" seen from providers; matched case-insensitively on the message.
_RANGE_PATTERNS: Final = re.compile(
    "|".join(
        [
            r"log response size exceeded",  # Alchemy
            r"response size exceeded",
            r"response size should not greater than",  # BSC-style nodes
            r"response (?:is )?too (?:large|big)",
            r"query returned more than [\d,]+ results",  # Infura
            r"(?:more|greater) than [\d,]+ (?:results|logs)",
            r"too many (?:results|logs)",
            r"logs? (?:matched|returned) .*exceed",
            r"exceeds? max results",
            r"limited to (?:a )?[\d,]+ (?:block )?range",  # QuickNode and others
            r"block range (?:is )?too (?:wide|large|big)",
            r"exceed(?:s|ed)? (?:the )?max(?:imum)? (?:block )?range",
            r"max(?:imum)? (?:block )?range (?:exceeded|is)",
            r"block range limit",
            r"range (?:limit )?exceeded",
            r"requested too many blocks",
            r"query timeout exceeded",  # the node gave up scanning: a smaller range works
        ]
    ),
    re.IGNORECASE,
)
# "this block range should work: [0x0, 0x4e1f]" / "Try with this block range [0x.., 0x..]."
_SUGGESTED: Final = re.compile(r"\[\s*(0x[0-9a-fA-F]+)\s*,\s*(0x[0-9a-fA-F]+)\s*\]")
_MAX_RANGE: Final = re.compile(
    r"(?:limited to (?:a )?|max(?:imum)? (?:block )?range(?: is)?:? ?|maximum is set to )"
    r"(\d[\d,]*)",
    re.IGNORECASE,
)
_RATE_LIMIT: Final = re.compile(
    r"rate.?limit|too many requests|request rate|daily request count|compute units"
    r"|capacity|throughput|exceeded .*quota",
    re.IGNORECASE,
)
_NODE_TRANSIENT: Final = re.compile(
    r"header not found|try again|temporarily unavailable|upstream|service unavailable"
    r"|timed? ?out|busy",
    re.IGNORECASE,
)
_LIMIT_EXCEEDED: Final = -32005  # EIP-1474 "limit exceeded": result limits AND rate limits
_INVALID_PARAMS: Final = -32602


def classify_error(error: Any, *, method: str = "", endpoint: str = "") -> RpcError:
    """Map a JSON-RPC ``error`` object onto the taxonomy above. Pure; never raises.

    ``method`` and ``endpoint`` (redacted) are only used in messages. Anything that is not a
    dict with an int ``code`` still yields an ``RpcNodeError`` carrying its text.
    """
    if isinstance(error, dict):
        raw_code = error.get("code")
        code = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None
        message = str(error.get("message", ""))
        data = error.get("data")
    else:
        code, message, data = None, str(error), None
    # Some providers put the useful text in ``data`` (a string or {"message": ...}).
    text = message
    if isinstance(data, str):
        text = f"{message} {data}"
    elif isinstance(data, dict) and isinstance(data.get("message"), str):
        text = f"{message} {data['message']}"

    # Range shapes first: their texts are specific, and Alchemy's mentions "limit" and "cap".
    looks_like_range = bool(_RANGE_PATTERNS.search(text)) or (
        code == _INVALID_PARAMS and "range" in text.lower()
    )
    if not looks_like_range and (code == 429 or _RATE_LIMIT.search(text)):
        return TransientRpcError(
            f"rate limited by node: {message}",
            kind="rate_limited",
            method=method,
            endpoint=endpoint,
        )
    if looks_like_range or code == _LIMIT_EXCEEDED:
        return RangeTooLargeError(
            code,
            message,
            suggested_to=_suggested_to(text, data),
            max_range=_max_range(text),
            data=data,
            method=method,
            endpoint=endpoint,
        )
    if _NODE_TRANSIENT.search(text):
        return TransientRpcError(
            f"node error {code}: {message}",
            kind="node_transient",
            method=method,
            endpoint=endpoint,
        )
    return RpcNodeError(code, message, data=data, method=method, endpoint=endpoint)


def _suggested_to(text: str, data: Any) -> int | None:
    match = _SUGGESTED.search(text)
    if match:
        return int(match.group(2), 16)
    # Infura also sends {"from": "0x..", "to": "0x..", "limit": 10000} in ``data``.
    if isinstance(data, dict) and isinstance(data.get("to"), str):
        try:
            return int(data["to"], 16)
        except ValueError:
            return None
    return None


def _max_range(text: str) -> int | None:
    match = _MAX_RANGE.search(text)
    if match is None:
        return None
    value = int(match.group(1).replace(",", ""))
    return value if value > 0 else None
