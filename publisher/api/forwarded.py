"""Who the client is: the peer address, or, behind ``api.trusted_proxies`` reverse proxies
connecting from ``api.trusted_proxy_networks``, the address the outermost of them saw.

Each proxy appends the address it received the request from to ``X-Forwarded-For``. The header
is read only when the peer (the nearest proxy) is in a trusted network: anyone else reaching
the API directly could write any address there. It is then walked from the right, as nginx's
``real_ip_recursive`` does: an entry in a trusted network is one of our proxies, so the walk
goes on to its left; the first entry outside is the client. At most N entries are read with N
proxies (the N-th from the right is the client whatever it is): everything to its left came
from the client and may be forged. Pure but for a rate-limited warning (below); the header
is split at most N times whatever its length.

A header from a peer outside the trusted networks is ignored, and the first one is logged as a
warning naming ``api.trusted_proxy_networks``: behind a proxy with a public address (a CDN, a
cloud load balancer) every client would otherwise share the proxy's rate-limit budget,
silently.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Sequence
from functools import lru_cache

import structlog

from dnft.config.api import DEFAULT_PROXY_NETWORKS

log = structlog.get_logger("dnft.api.forwarded")

UNKNOWN = "unknown"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    """The parsed networks (settings are validated at load; parsed once per distinct list)."""
    return tuple(ipaddress.ip_network(c) for c in cidrs)


def _ip(entry: str) -> Address | None:
    """The IP address an X-Forwarded-For entry or a peer names (``1.2.3.4``, ``1.2.3.4:80``,
    ``[::1]:80``, ``::1``), an IPv4-mapped IPv6 address as IPv4; None for anything else."""
    text = entry.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, trusted: Sequence[Network]) -> bool:
    return any(address in network for network in trusted)


# At most one warning this often: any client reaching the API directly can send the header,
# so the log must not be theirs to flood, nor can the first forger's line be the only one
# an operator whose proxy is misconfigured ever sees.
WARN_EVERY_S = 600.0
_last_warned = -math.inf


def _warn_untrusted_peer(peer: str, trusted_proxies: int) -> None:
    """A header the setting made us ignore, said at most once per WARN_EVERY_S."""
    global _last_warned
    now = time.monotonic()
    if now - _last_warned < WARN_EVERY_S:
        return
    _last_warned = now
    log.warning(
        "X-Forwarded-For ignored: peer not in api.trusted_proxy_networks",
        peer=peer,
        trusted_proxies=trusted_proxies,
        hint="if this peer is your proxy (a CDN or load balancer with a public address), "
        "add its ranges to api.trusted_proxy_networks; else every client behind it shares "
        "one rate-limit budget",
    )


def client_address(
    peer: str | None,
    forwarded_for: Sequence[str],
    trusted_proxies: int,
    trusted_networks: Sequence[str] = DEFAULT_PROXY_NETWORKS,
) -> str:
    """The client's address. ``forwarded_for``: every X-Forwarded-For header, in order;
    ``trusted_networks``: CIDRs our proxies connect from. With no trusted proxy, a peer
    outside the trusted networks, or an entry that is not an IP address where the walk reads
    it, the peer address counts (a misconfigured proxy then throttles as one client)."""
    fallback = peer or UNKNOWN
    if trusted_proxies <= 0 or not forwarded_for:
        return fallback
    trusted = networks(tuple(trusted_networks))
    peer_ip = _ip(peer or "")
    if peer_ip is None or not _trusted(peer_ip, trusted):
        _warn_untrusted_peer(fallback, trusted_proxies)
        return fallback  # not one of our proxies: its header is the client's to forge
    joined = ",".join(forwarded_for)
    # The N rightmost entries, nearest first (fewer when fewer proxies wrote one).
    written = joined.rsplit(",", trusted_proxies)[-trusted_proxies:][::-1]
    for hop, entry in enumerate(written, start=1):
        address = _ip(entry)
        if address is None:
            return fallback
        if hop == len(written) or not _trusted(address, trusted):
            return str(address)
    return fallback  # unreachable: the header had at least one entry
