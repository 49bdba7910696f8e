"""Node URLs are secrets: API keys live in paths, query strings and userinfo. One helper for
everything that names an endpoint (messages, logs, metrics labels).

``redact_url`` keeps scheme, host and port, and masks userinfo, every query value and every
key-like path segment (so ``.../v2/<key>`` and ``?apikey=`` show as ``***``) while two
endpoints of one provider stay distinguishable. ``scrub_urls`` applies it to every URL
inside a free text, such as an aiohttp exception message that echoes the URL it failed on.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit, urlunsplit

__all__ = ["redact_url", "scrub_urls"]

# A path segment this long made of token characters is taken for a key (Alchemy /v2/<key>,
# Infura /v3/<key>, QuickNode /<token>/): short words like "rpc" or "v2" stay readable.
_KEYLIKE: Final = re.compile(r"[A-Za-z0-9_\-.~%]{12,}")
# A URL inside free text: up to whitespace, a quote or a closing bracket (yarl's repr is
# ``URL('wss://...')``).
_URL_IN_TEXT: Final = re.compile(r"(?i)\b(?:https?|wss?)://[^\s'\"<>)\]]*")


def redact_url(url: str) -> str:
    """Return ``url`` without userinfo, query values or key-like path segments."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        if parts.port is not None:
            host = f"{host}:{parts.port}"
    except ValueError:
        return "<unparseable url>"
    if parts.username or parts.password or "@" in parts.netloc:
        host = f"***@{host}"
    path = "/".join("***" if _KEYLIKE.fullmatch(seg) else seg for seg in parts.path.split("/"))
    query = "&".join(f"{kv.split('=', 1)[0][:32]}=***" for kv in parts.query.split("&") if kv)
    return urlunsplit((parts.scheme, host, path, query, ""))


def scrub_urls(text: str) -> str:
    """``text`` with every http(s)/ws(s) URL in it redacted (an error message, a log field)."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
