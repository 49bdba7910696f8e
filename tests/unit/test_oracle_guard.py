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


class TestMissedAddresses:
    """Addresses the guard once let through (issue 17): each listed, with and without the
    private-hosts opt-in."""

    @pytest.mark.parametrize(
        ("address", "problem", "even_if_private_allowed"),
        [
            ("169.254.170.2", "a cloud metadata address", True),  # ECS task metadata
            ("169.254.170.23", "a cloud metadata address", True),  # EKS Pod Identity
            ("fd00:ec2::23", "a cloud metadata address", True),  # EC2 IPv6 metadata
            ("::ffff:169.254.170.2", "a cloud metadata address", True),  # IPv4-mapped
            ("64:ff9b::a9fe:aa02", "a cloud metadata address", True),  # NAT64 of ECS metadata
            # Local-use NAT64 (64:ff9b:1::/48) with the IPv4 in bits 48-63 and 72-87.
            ("64:ff9b:1:a9fe:a9:fe00::", "a cloud metadata address", True),
            ("64:ff9b:1:7f00:1::", "a loopback address", False),
            ("64:ff9b:1:a00:1::", "a private address", False),
            ("64:ff9b:1:808:8:800::", "a local-use NAT64 address", False),  # 8.8.8.8 via it
            # IPv4-mapped ::ffff:0:0/96 and IPv4-translated ::ffff:0:0:0/96: the IPv4 rules.
            ("::ffff:7f00:1", "a loopback address", False),
            ("::ffff:a00:1", "a private address", False),
            ("::ffff:a9fe:101", "a link-local address", False),
            ("::ffff:6440:1", "not a public address", False),  # 100.64.0.1, shared
            ("::ffff:0:7f00:1", "a loopback address", False),
            ("::ffff:0:a9fe:a9fe", "a cloud metadata address", True),
            # NAT64 64:ff9b::/96 with an embedded private IPv4.
            ("64:ff9b::a00:1", "a private address", False),
            ("64:ff9b::c0a8:101", "a private address", False),
            ("64:ff9b::a9fe:101", "a link-local address", False),
        ],
    )
    def test_refused(self, address: str, problem: str, even_if_private_allowed: bool) -> None:
        ip = ipaddress.ip_address(address)
        assert address_problem(ip, allow_private=False) == problem
        opted_in = address_problem(ip, allow_private=True)
        assert (opted_in == problem) if even_if_private_allowed else opted_in is None

    @pytest.mark.parametrize(
        "address", ["::ffff:808:808", "::ffff:0:808:808", "64:ff9b::808:808", "2606:4700::1111"]
    )
    def test_public_forms_still_pass(self, address: str) -> None:
        assert address_problem(ipaddress.ip_address(address), allow_private=False) is None

    def test_metadata_literal_url_refused_up_front(self) -> None:
        for url in ("http://169.254.170.2/v2/credentials", "http://[fd00:ec2::23]/"):
            with pytest.raises(Rejected, match="metadata"):
                HostGuard(url, allow_private=True).check_literal()


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
            ("\u00b2", None),  # a digit to str.isdigit(), not to float()
            ("\u0663", None),
            (None, None),
        ],
    )
    def test_parse(self, header: str | None, seconds: float | None) -> None:
        assert parse_retry_after(header, self.NOW) == seconds
