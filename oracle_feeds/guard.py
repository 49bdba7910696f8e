"""The SSRF guard of HTTP feeds: which hosts and addresses a feed may reach.

* Only the configured URL's origin (scheme, host, port) is fetched; a redirect elsewhere is
  refused (``redirect``), and aiohttp's own redirect following is off.
* Every address a host name resolves to is checked inside aiohttp's connector (the resolver
  below), so the address checked is the address connected to: no window for DNS rebinding
  between a check and the connect. IP literals skip resolvers, so they are checked up front.
* Loopback, private, link-local, shared and reserved addresses are refused unless the feed
  sets ``allow_private_hosts``; unspecified, multicast and cloud metadata addresses always.
"""

from __future__ import annotations

import email.utils
import ipaddress
import re
import socket
from datetime import UTC
from typing import Final
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from oracle_feeds.validate import Rejected

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Instance metadata services hand out cloud credentials: never a feed, whatever the config.
# EC2/GCP/Azure (169.254.169.254, fd00:ec2::254), ECS task metadata and credentials
# (169.254.170.2), EKS Pod Identity (169.254.170.23, fd00:ec2::23), Alibaba (100.100.100.200).
METADATA_ADDRESSES: Final = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "fd00:ec2::254",
        "169.254.170.2",
        "169.254.170.23",
        "fd00:ec2::23",
        "100.100.100.200",
    )
)
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
# IPv6 forms that carry an IPv4 address in their low 32 bits and reach it through a gateway:
# NAT64's well-known prefix, IPv4-translated ::ffff:0:a.b.c.d, and the deprecated
# IPv4-compatible ::a.b.c.d. (IPv4-mapped ::ffff:a.b.c.d is ``ipv4_mapped``.)
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")
_IPV4_TRANSLATED: Final = ipaddress.ip_network("::ffff:0:0:0/96")
_IPV4_COMPATIBLE: Final = ipaddress.ip_network("::/96")
# Local-use NAT64 (RFC 8215): a /48 prefix, so the IPv4 address sits in bits 48-63 and 72-87
# (RFC 6052 section 2.2: bits 64-71 are zero). A site's own translator: never public.
_LOCAL_NAT64: Final = ipaddress.ip_network("64:ff9b:1::/48")
# Hosts inet_aton may read as IPv4 ("2130706433", "0177.0.0.1", "0x7f.1"): resolvers and some
# URL libraries accept these spellings, so they are judged as the address they spell.
_NUMERIC_HOST: Final = re.compile(r"[0-9a-fA-FxX.]+")
# A Retry-After longer than this is treated as this: a feed is never parked for days.
MAX_RETRY_AFTER_S: Final = 3600.0


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (``::ffff:a.b.c.d``, ``::ffff:0:a.b.c.d``,
    6to4 ``2002:AABB:CCDD::``, NAT64 ``64:ff9b::a.b.c.d`` and local-use ``64:ff9b:1::/48``,
    ``::a.b.c.d``): it is judged as that address."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _LOCAL_NAT64:
        packed = address.packed
        return ipaddress.IPv4Address(packed[6:8] + packed[9:11])
    if (
        address in _NAT64
        or address in _IPV4_TRANSLATED
        or (address in _IPV4_COMPATIBLE and int(address) > 1)  # not :: / ::1
    ):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_problem(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why a feed may not connect to ``address``, or None if it may."""
    local_nat64 = isinstance(address, ipaddress.IPv6Address) and address in _LOCAL_NAT64
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address):
        address = embedded_ipv4(address) or address
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if allow_private:
        return None
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_private or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local):
        return "a private address"
    if local_nat64:
        return "a local-use NAT64 address"
    if not address.is_global:
        return "not a public address"
    return None


Origin = tuple[str, str, int]


def origin_of(url: str) -> Origin | None:
    """``(scheme, host, port)`` of an http(s) URL, or None for anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower().rstrip("."), port or _DEFAULT_PORTS[scheme]


def ip_literal(host: str) -> IPAddress | None:
    """The address an IP-literal host names, in any spelling inet_aton reads; None for names."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


class HostGuard:
    """The checks of one feed, whose configured URL fixes the only allowed origin."""

    def __init__(self, url: str, *, allow_private: bool) -> None:
        origin = origin_of(url)
        if origin is None:
            raise ValueError("feed URL must be http:// or https:// with a host")
        self.origin = origin
        self.allow_private = allow_private

    def same_origin(self, url: str) -> bool:
        return origin_of(url) == self.origin

    def check_literal(self) -> None:
        """Refuse an IP-literal host that is not allowed (names are checked on resolve)."""
        host = self.origin[1].strip("[]")
        address = ip_literal(host)
        if address is None:
            return
        problem = address_problem(address, allow_private=self.allow_private)
        if problem is not None:
            raise Rejected("blocked_host", f"{host} is {problem}")

    def resolver(self) -> GuardedResolver:
        return GuardedResolver(allow_private=self.allow_private)


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that refuses names resolving to any address the guard forbids.

    Raises ``Rejected('blocked_host')`` (not an OSError, so aiohttp passes it through).
    Create inside the running event loop.
    """

    def __init__(self, *, allow_private: bool) -> None:
        self._inner = ThreadedResolver()
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            address = ipaddress.ip_address(result["host"].split("%", 1)[0])
            problem = address_problem(address, allow_private=self._allow_private)
            if problem is not None:
                raise Rejected("blocked_host", f"{host} resolves to {address}, {problem}")
        return results

    async def close(self) -> None:
        await self._inner.close()


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date), capped at
    :data:`MAX_RETRY_AFTER_S`; None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    # ASCII digits only: str.isdigit() also takes "²", which float() then refuses.
    if re.fullmatch(r"[0-9]{1,12}", text):
        seconds = float(text)
    else:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # "-0000": UTC by RFC 5322
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - now
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)
