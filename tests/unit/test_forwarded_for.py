"""X-Forwarded-For is believed only from our own proxies: the peer must be in
``api.trusted_proxy_networks``, and the walk from the right goes on only through trusted
addresses (the first one outside is the client), N entries at most."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
import structlog

from dnft.config import settings_from_mapping
from dnft.config.api import DEFAULT_PROXY_NETWORKS
from dnft.errors import ConfigError
from publisher.api import forwarded
from publisher.api.forwarded import WARN_EVERY_S, client_address

CLIENT = "203.0.113.7"
INGRESS = "10.0.0.9"  # the cluster's ingress: a private address
OUTSIDER = "198.51.100.4"  # reaches the API's port directly, not through a proxy


def settings(**api: Any) -> dict[str, Any]:
    return {
        "kafka": {"bootstrap_servers": ["127.0.0.1:9092"]},
        "postgres": {"dsn": "postgresql://dnft@127.0.0.1:5432/dnft"},
        "api": api,
    }


class TestSpoofing:
    def test_untrusted_peer_cannot_choose_its_address(self) -> None:
        # Each forged header would spread one attacker over many rate-limit buckets.
        for forged in ("1.2.3.4", "10.0.0.2", f"{CLIENT}, 10.0.0.2"):
            assert client_address(OUTSIDER, [forged], 1) == OUTSIDER
            assert client_address(OUTSIDER, [forged], 2) == OUTSIDER

    def test_trusted_peer_is_believed(self) -> None:
        assert client_address(INGRESS, [f"1.1.1.1, {CLIENT}"], 1) == CLIENT
        assert client_address("127.0.0.1", [CLIENT], 1) == CLIENT
        assert client_address("::1", [CLIENT], 1) == CLIENT
        assert client_address("::ffff:10.1.2.3", [CLIENT], 1) == CLIENT  # IPv4-mapped peer
        assert client_address("fd12::5", [CLIENT], 1) == CLIENT

    def test_walk_stops_at_the_first_untrusted_hop(self) -> None:
        # Two proxies configured, but this request came through the ingress only: the entry
        # it wrote is outside the trusted networks, so it is the client (the forged one to
        # its left is not).
        assert client_address(INGRESS, [f"6.6.6.6, {CLIENT}"], 2) == CLIENT
        # Through both: the inner proxy's address is trusted, the walk goes one further.
        assert client_address(INGRESS, [f"6.6.6.6, {CLIENT}, 10.0.0.2"], 2) == CLIENT
        # Never more than N entries, even when they are all trusted.
        assert client_address(INGRESS, ["6.6.6.6, 10.0.0.3, 10.0.0.2"], 2) == "10.0.0.3"

    def test_configured_networks(self) -> None:
        public_lb = ["198.51.100.0/24"]  # a load balancer with public addresses
        assert client_address(OUTSIDER, [CLIENT], 1, public_lb) == CLIENT
        assert client_address(INGRESS, [CLIENT], 1, public_lb) == INGRESS  # not trusted now
        assert client_address(OUTSIDER, [f"{CLIENT}, 198.51.100.9"], 2, public_lb) == CLIENT
        assert client_address(OUTSIDER, [CLIENT], 1, []) == OUTSIDER  # nothing trusted

    def test_peer_that_is_no_ip_address(self) -> None:
        assert client_address("", [CLIENT], 1) == "unknown"
        assert client_address(None, [CLIENT], 1) == "unknown"
        assert client_address("/run/dnft.sock", [CLIENT], 1) == "/run/dnft.sock"

    def test_garbage_in_the_walk_gives_the_peer(self) -> None:
        assert client_address(INGRESS, [f"{CLIENT}, garbage"], 2) == INGRESS
        assert client_address(INGRESS, ["garbage, 10.0.0.2"], 2) == INGRESS


class TestSetting:
    def test_default_private_ranges(self) -> None:
        api = settings_from_mapping(settings(), {}).api
        assert api.trusted_proxy_networks == list(DEFAULT_PROXY_NETWORKS)
        assert "10.0.0.0/8" in api.trusted_proxy_networks

    def test_from_config_and_environment(self) -> None:
        api = settings_from_mapping(settings(trusted_proxy_networks=[" 192.0.2.0/24 "]), {}).api
        assert api.trusted_proxy_networks == ["192.0.2.0/24"]
        env = {"DNFT_API__TRUSTED_PROXY_NETWORKS": '["2001:db8::/32"]'}
        api = settings_from_mapping(settings(), env).api
        assert api.trusted_proxy_networks == ["2001:db8::/32"]

    @pytest.mark.parametrize("cidr", ["10.0.0.0/33", "10.0.0.1/8", "everywhere", "fc00::/129"])
    def test_bad_network_names_the_key(self, cidr: str) -> None:
        with pytest.raises(ConfigError) as info:
            settings_from_mapping(settings(trusted_proxy_networks=[cidr]), {})
        assert info.value.key == "api.trusted_proxy_networks"
        assert cidr in str(info.value)


class TestUntrustedPeerWarning:
    """A header from a peer outside api.trusted_proxy_networks, with proxies configured, is
    ignored: said at most once per WARN_EVERY_S, naming the setting (a CDN's public addresses would
    otherwise put every client in one rate-limit bucket without a word)."""

    @pytest.fixture(autouse=True)
    def fresh_process(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(forwarded, "_last_warned", -math.inf)

    def test_warned_once_naming_the_setting(self) -> None:
        with structlog.testing.capture_logs() as logs:
            assert client_address(OUTSIDER, [CLIENT], 1) == OUTSIDER
            assert client_address("198.51.100.5", [CLIENT], 2) == "198.51.100.5"
        (warning,) = logs
        assert warning["log_level"] == "warning"
        assert "api.trusted_proxy_networks" in warning["event"]
        assert warning["peer"] == OUTSIDER
        assert warning["trusted_proxies"] == 1

    def test_silent_when_nothing_is_ignored(self) -> None:
        with structlog.testing.capture_logs() as logs:
            assert client_address(OUTSIDER, [CLIENT], 0) == OUTSIDER  # no proxies configured
            assert client_address(OUTSIDER, [], 1) == OUTSIDER  # no header
            assert client_address(INGRESS, [CLIENT], 1) == CLIENT  # our proxy
        assert logs == []
        with structlog.testing.capture_logs() as logs:
            client_address(OUTSIDER, [CLIENT], 1)
        assert len(logs) == 1  # the first ignored header still warns

    def test_said_again_after_the_interval(self, monkeypatch: pytest.MonkeyPatch) -> None:
        with structlog.testing.capture_logs() as logs:
            client_address(OUTSIDER, [CLIENT], 1)
            client_address(OUTSIDER, [CLIENT], 1)
            monkeypatch.setattr(forwarded, "_last_warned", time.monotonic() - WARN_EVERY_S)
            client_address("198.51.100.5", [CLIENT], 1)
        assert [w["peer"] for w in logs] == [OUTSIDER, "198.51.100.5"]
