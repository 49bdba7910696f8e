"""Prometheus metrics for the RPC layer: latency per method and endpoint host, errors by kind."""

from __future__ import annotations

from urllib.parse import urlsplit

from dnft import metrics


class PrometheusRpcObserver:
    """Labels endpoints by host only: URL paths of hosted providers often embed API keys."""

    def __init__(self, network: str) -> None:
        self._network = network
        self._hosts: dict[str, str] = {}

    def on_request(self, method: str, endpoint: str, seconds: float, outcome: str) -> None:
        host = self._hosts.get(endpoint)
        if host is None:
            parts = urlsplit(endpoint)
            host = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
            self._hosts[endpoint] = host
        metrics.indexer_rpc_request_seconds.labels(self._network, method, host).observe(seconds)
        if outcome != "ok":
            metrics.indexer_rpc_errors_total.labels(self._network, method, host, outcome).inc()
