"""SSRF guard: which addresses and origins a feed may reach; Retry-After parsing."""

from __future__ import annotations

import ipaddress

import pytest

from oracle_feeds.guard import HostGuard, address_problem, origin_of, parse_retry_after
from oracle_feeds.validate import Rejected


class TestAddresses:
    """Private, loopback and link-local need the opt-in; metadata never passes."""

    @pytest.mark.parametrize(
        ("address", "problem"),
        [
            ("127.0.0.1", "a loopback address"),
            ("::1", "a loopback address"),
            ("::ffff:127.0.0.1", "a loopback address"),
            ("10.1.2.3", "a private address"),
            ("172.16.0.1", "a private address"),
            ("192.168.1.1", "a private address"),
            ("fd12::1", "a private address"),
            ("169.254.1.1", "a link-local address"),
            ("fe80::1", "a link-local address"),
            ("100.64.0.1", "not a public address"),
            ("0.0.0.0", "an unspecified address"),
            ("224.0.0.1", "a multicast address"),
            ("169.254.169.254", "a cloud metadata address"),
            ("8.8.8.8", None),
            ("2606:4700::1111", None),
        ],
    )
    def test_default_policy(self, address: str, problem: str | None) -> None:
        assert address_problem(ipaddress.ip_address(address), allow_private=False) == problem

    @pytest.mark.parametrize(
        ("address", "allowed"),
        [
            ("127.0.0.1", True),
            ("10.1.2.3", True),
            ("fe80::1", True),
            ("169.254.169.254", False),
            ("fd00:ec2::254", False),
            ("0.0.0.0", False),
            ("ff02::1", False),
        ],
    )
    def test_opt_in(self, address: str, allowed: bool) -> None:
        problem = address_problem(ipaddress.ip_address(address), allow_private=True)
        assert (problem is None) == allowed


class TestOrigins:
    """Only the configured scheme, host and port are fetched."""

    def test_origin(self) -> None:
        assert origin_of("https://API.example.com./v1?k=1") == ("https", "api.example.com", 443)
        assert origin_of("http://127.0.0.1:8080/x") == ("http", "127.0.0.1", 8080)
        assert origin_of("ftp://x/y") is None
        assert origin_of("http:///nohost") is None
        assert origin_of("http://x:99999/") is None

    def test_same_origin(self) -> None:
        guard = HostGuard("https://api.example.com/v1/price", allow_private=False)
        assert guard.same_origin("https://api.example.com:443/v2/price")
        assert not guard.same_origin("http://api.example.com/v1/price")
        assert not guard.same_origin("https://api.example.com:8443/v1/price")
        assert not guard.same_origin("https://evil.example.com/v1/price")
        assert not guard.same_origin("https://api.example.com@evil.example.com/")

    def test_ip_literals_are_checked_up_front(self) -> None:
        with pytest.raises(Rejected, match="loopback") as info:
            HostGuard("http://127.0.0.1:1/x", allow_private=False).check_literal()
        assert info.value.reason == "blocked_host"
        with pytest.raises(Rejected, match="metadata"):
            HostGuard("http://[::ffff:169.254.169.254]/", allow_private=True).check_literal()
        HostGuard("http://127.0.0.1:1/x", allow_private=True).check_literal()
        HostGuard("https://example.com/x", allow_private=False).check_literal()  # on resolve


class TestRetryAfter:
    """Delta seconds or an HTTP date, clamped to [0, 3600]."""

    NOW = 1_700_000_000.0

    @pytest.mark.parametrize(
        ("header", "seconds"),
        [
            ("5", 5.0),
            (" 120 ", 120.0),
            ("999999", 3600.0),
            ("Tue, 14 Nov 2023 22:13:50 GMT", 30.0),
            ("Tue, 14 Nov 2023 22:13:50 -0000", 30.0),
            ("Tue, 14 Nov 2023 22:00:00 GMT", 0.0),
            ("soon", None),
            ("-3", None),
            (None, None),
        ],
    )
    def test_parse(self, header: str | None, seconds: float | None) -> None:
        assert parse_retry_after(header, self.NOW) == seconds
