"""Classification of provider errors into RangeTooLarge / Transient / Node errors."""

from __future__ import annotations

from typing import Any

import pytest

from dnft.errors import ConfigError
from dnft.rpc import (
    RangeTooLargeError,
    RpcClient,
    RpcNodeError,
    TransientRpcError,
    classify_error,
    redact_url,
)

ALCHEMY = {
    "code": -32602,
    "message": (
        "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block "
        "range and no limit on the response size, or you can request any block range with a "
        "cap of 10K logs in the response. Based on your parameters, this block range should "
        "work: [0x10, 0x4e1f]"
    ),
}
INFURA = {
    "code": -32005,
    "message": "query returned more than 10000 results. Try with this block range [0x1, 0x2c].",
    "data": {"from": "0x1", "limit": 10000, "to": "0x2c"},
}
INFURA_DATA_ONLY = {
    "code": -32005,
    "message": "query returned more than 10000 results",
    "data": {"from": "0x1", "limit": 10000, "to": "0x2d"},
}


class TestRangeTooLarge:
    """Every known provider shape of "range too large" becomes RangeTooLargeError."""

    @pytest.mark.parametrize(
        ("error", "suggested_to", "max_range"),
        [
            (ALCHEMY, 0x4E1F, None),
            (INFURA, 0x2C, None),
            (INFURA_DATA_ONLY, 0x2D, None),
            ({"code": -32614, "message": "eth_getLogs is limited to a 10,000 range"}, None, 10000),
            ({"code": -32000, "message": "block range is too wide"}, None, None),
            ({"code": -32000, "message": "exceed maximum block range: 5000"}, None, 5000),
            (
                {
                    "code": -32000,
                    "message": "Query timeout exceeded. Consider reducing your block range",
                },
                None,
                None,
            ),
            ({"code": -32005, "message": "limit exceeded"}, None, None),
            ({"code": -32602, "message": "invalid block range params"}, None, None),
            (
                {"code": -32000, "message": "response size should not greater than 10000000 bytes"},
                None,
                None,
            ),
            (
                {
                    "code": -32000,
                    "message": "requested too many blocks from 0 to 20000, maximum is set to 10000",
                },
                None,
                10000,
            ),
            (
                {
                    "code": -32000,
                    "message": "query exceeds max results 20000, retry with the range 1-99",
                },
                None,
                None,
            ),
        ],
    )
    def test_shapes(
        self, error: dict[str, Any], suggested_to: int | None, max_range: int | None
    ) -> None:
        err = classify_error(error, method="eth_getLogs", endpoint="http://node/")
        assert isinstance(err, RangeTooLargeError), err
        assert err.suggested_to == suggested_to
        assert err.max_range == max_range
        assert err.code == error["code"]
        assert "eth_getLogs" in str(err)

    def test_is_a_node_error(self) -> None:
        assert isinstance(classify_error(ALCHEMY), RpcNodeError)


class TestOtherErrors:
    """Rate limits and lagging backends are transient; everything else is a node error."""

    @pytest.mark.parametrize(
        "error",
        [
            {"code": -32005, "message": "daily request count exceeded, request rate limited"},
            {"code": 429, "message": "Too Many Requests"},
            {
                "code": -32007,
                "message": "Your app has exceeded its compute units per second capacity",
            },
        ],
    )
    def test_rate_limits(self, error: dict[str, Any]) -> None:
        err = classify_error(error)
        assert isinstance(err, TransientRpcError)
        assert err.kind == "rate_limited"
        assert not err.failover

    def test_header_not_found_is_transient(self) -> None:
        err = classify_error({"code": -32000, "message": "header not found"})
        assert isinstance(err, TransientRpcError)
        assert err.kind == "node_transient"

    @pytest.mark.parametrize(
        "error",
        [
            {"code": 3, "message": "execution reverted", "data": "0x08c379a0"},
            {"code": -32601, "message": "the method eth_foo does not exist/is not available"},
            {"code": -32602, "message": "invalid argument 0: hex string without 0x prefix"},
        ],
    )
    def test_node_errors(self, error: dict[str, Any]) -> None:
        err = classify_error(error, method="eth_call")
        assert type(err) is RpcNodeError
        assert err.code == error["code"]
        assert err.message == error["message"]

    @pytest.mark.parametrize("error", [None, "boom", 42, [1], {"code": "x"}, {"code": True}])
    def test_garbage_never_raises(self, error: Any) -> None:
        err = classify_error(error)
        assert isinstance(err, RpcNodeError)
        assert err.code is None


class TestRedaction:
    """Secrets in URLs never reach messages."""

    @pytest.mark.parametrize(
        ("url", "secret"),
        [
            ("https://eth-mainnet.g.alchemy.com/v2/AbCdEf0123456789xyzKEY", "AbCdEf0123456789"),
            ("https://mainnet.infura.io/v3/0123456789abcdef0123456789abcdef", "0123456789abcdef"),
            ("https://user:hunter2@node.example.com:8545/", "hunter2"),
            ("https://rpc.example.com/?apikey=s3cr3t&x=1", "s3cr3t"),
        ],
    )
    def test_redacts(self, url: str, secret: str) -> None:
        redacted = redact_url(url)
        assert secret not in redacted
        assert "***" in redacted

    def test_keeps_host_and_port(self) -> None:
        assert redact_url("http://127.0.0.1:8545/") == "http://127.0.0.1:8545/"

    @pytest.mark.parametrize("url", ["ftp://node/", "127.0.0.1:8545", "http://"])
    def test_bad_urls_rejected_without_leaking(self, url: str) -> None:
        with pytest.raises(ConfigError, match=r"rpc\.urls"):
            RpcClient([url])
