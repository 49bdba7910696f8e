"""Who the client is: the peer address, or, behind ``api.trusted_proxies`` reverse proxies,
the address the outermost of them saw.

Each proxy appends the address it received the request from to ``X-Forwarded-For``. With N
proxies of our own, the N rightmost entries were written by them, and the N-th from the right
is the client as the outermost proxy saw it; everything to its left came from the client and
may be forged. Pure; the header is split at most N times whatever its length.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

UNKNOWN = "unknown"


def _address(entry: str) -> str | None:
    """The IP address an X-Forwarded-For entry names (``1.2.3.4``, ``1.2.3.4:80``,
    ``[::1]:80``, ``::1``), normalized; None for anything else."""
    text = entry.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.partition(":")[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def client_address(peer: str | None, forwarded_for: Sequence[str], trusted_proxies: int) -> str:
    """The client's address. ``forwarded_for``: every X-Forwarded-For header, in order.
    With no trusted proxy, or an entry that is not an IP address where the client should be,
    the peer address counts (a misconfigured proxy then throttles as one client)."""
    fallback = peer or UNKNOWN
    if trusted_proxies <= 0 or not forwarded_for:
        return fallback
    joined = ",".join(forwarded_for)
    entries = joined.rsplit(",", trusted_proxies)
    # Fewer entries than proxies: every one was written by a proxy of ours; the leftmost is
    # the farthest hop known.
    chosen = entries[-trusted_proxies] if len(entries) >= trusted_proxies else entries[0]
    return _address(chosen) or fallback
