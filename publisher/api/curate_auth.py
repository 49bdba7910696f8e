"""Who may curate: credentials for /curate, and the CSRF defence of its forms.

* **Bearer token** (scripts): ``Authorization: Bearer <token>``, the token from a secret (an
  environment variable or a mounted file). Compared as sha256 digests with
  ``hmac.compare_digest``: constant time, whatever the lengths.
* **Basic auth** (people in a browser): users with PBKDF2-SHA256 password hashes in the
  settings. An unknown user is checked against a dummy hash, so timing does not tell which
  names exist. A verified (user, password) is remembered by an HMAC of it for a while, so the
  page's images do not each cost a PBKDF2 run. PBKDF2 runs on a small executor of its own
  with a bounded queue, and failed logins are throttled per client address and overall
  (``login_guard``): a throttled client is refused before any PBKDF2 run.
* **CSRF.** A browser re-sends basic credentials by itself, so a form post is accepted only
  when (1) its Origin (or, without one, its Referer) is this server, and (2) its ``csrf`` field
  is the HMAC of the curator and the nonce in the ``SameSite=Strict`` cookie the page set
  (a signed double-submit token: another site can neither read the cookie nor forge the
  HMAC). Requests with the bearer token are exempt: no browser attaches it by itself.

Pure apart from :meth:`CurateAuth.authenticate` running PBKDF2 on the checker's threads.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial
from typing import Literal
from urllib.parse import urlsplit

from publisher.api.login_guard import FailedLogins, PasswordChecker

PBKDF2_ITERATIONS = 600_000
CSRF_COOKIE = "dnft_curate_csrf"
CSRF_FIELD = "csrf"
# Verified basic-auth credentials are remembered this long (and at most this many).
REMEMBER_S = 300.0
REMEMBER_MAX = 1_000
_DUMMY_HASH = "pbkdf2_sha256$600000$ZG5mdC1kdW1teQ==$" + base64.b64encode(bytes(32)).decode()


def hash_password(password: str, *, iterations: int = PBKDF2_ITERATIONS) -> str:
    """A PBKDF2-SHA256 hash for ``api.curate.users[].password_hash``. Blocks (~0.5 s)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return "$".join(
        ("pbkdf2_sha256", str(iterations), base64.b64encode(salt).decode(), _b64(digest))
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches ``encoded`` (constant-time comparison). Blocks."""
    try:
        scheme, iterations, salt, expected = encoded.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        digest = hashlib.pbkdf2_hmac(
            "sha256", password.encode(), base64.b64decode(salt), int(iterations)
        )
        return hmac.compare_digest(digest, base64.b64decode(expected))
    except (ValueError, binascii.Error):
        return False


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated curator: the name decisions are recorded under, and how they signed
    in (``bearer`` requests need no CSRF token)."""

    curator: str
    via: Literal["bearer", "basic"]


class LoginThrottledError(Exception):
    """Too many failed logins from this client (or from everybody): try again in
    ``retry_after_s`` (answered 429)."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"too many failed logins; retry in {retry_after_s:.0f} s")
        self.retry_after_s = retry_after_s


class CurateAuth:
    """Checks /curate credentials. ``token`` may be None (basic auth only); ``users`` maps
    names to password hashes. ``checker`` runs PBKDF2 and ``failures`` throttles failed
    logins (defaults: one thread, 8 waiting; 5 failures per client then 6 a minute)."""

    def __init__(
        self,
        *,
        token: str | None,
        token_curator: str,
        users: dict[str, str],
        checker: PasswordChecker | None = None,
        failures: FailedLogins | None = None,
    ) -> None:
        self._token_digest = None if token is None else hashlib.sha256(token.encode()).digest()
        self._token_curator = token_curator
        self._users = dict(users)
        # Signs CSRF tokens and remembered credentials. Derived from the configured secrets,
        # so every replica with the same settings accepts the others' forms.
        material = b"\0".join(
            [b"dnft.curate.v1", token.encode() if token else b""]
            + [f"{n}:{h}".encode() for n, h in sorted(self._users.items())]
        )
        self._key = hashlib.sha256(material).digest()
        self._remembered: OrderedDict[bytes, float] = OrderedDict()
        self._checker = checker or PasswordChecker(threads=1, queue=8)
        self._failures = failures or FailedLogins(
            burst=5, per_client_per_min=6.0, global_per_min=120.0
        )

    @property
    def challenge(self) -> str:
        """The WWW-Authenticate header of a 401."""
        return 'Basic realm="dnft curate", charset="UTF-8"' if self._users else "Bearer"

    async def authenticate(
        self, authorization: str | None, client: str = "unknown"
    ) -> Identity | None:
        """The curator an Authorization header proves, or None; ``client`` is the address
        failed logins are counted against. Never raises for bad input; raises
        LoginThrottledError (too many failures) or LoginsBusyError (checks queue full)
        instead of running a password check."""
        if not authorization:
            return None
        scheme, _, value = authorization.strip().partition(" ")
        scheme, value = scheme.lower(), value.strip()
        if scheme == "bearer" and self._token_digest is not None and value:
            offered = hashlib.sha256(value.encode()).digest()
            if hmac.compare_digest(offered, self._token_digest):
                return Identity(self._token_curator, "bearer")
            return None
        if scheme == "basic" and self._users and value:
            try:
                user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            if sep and await self._check_user(user, password, client):
                return Identity(user, "basic")
        return None

    async def _check_user(self, user: str, password: str, client: str) -> bool:
        mark = hmac.new(self._key, f"{user}\0{password}".encode(), hashlib.sha256).digest()
        now = time.monotonic()
        seen = self._remembered.get(mark)
        if seen is not None and now - seen < REMEMBER_S:
            return True
        wait = self._failures.wait(client)
        if wait > 0:
            raise LoginThrottledError(wait)
        encoded = self._users.get(user)
        # An unknown user costs the same PBKDF2 run as a known one.
        ok = await self._checker.run(partial(verify_password, password, encoded or _DUMMY_HASH))
        if not ok or encoded is None:
            self._failures.failed(client)
            return False
        self._remembered[mark] = now
        self._remembered.move_to_end(mark)
        while len(self._remembered) > REMEMBER_MAX:
            self._remembered.popitem(last=False)
        return True

    def close(self) -> None:
        """Stop the password checker's threads."""
        self._checker.close()

    def csrf_token(self, curator: str, nonce: str) -> str:
        """The form token for ``curator`` with the cookie's ``nonce``."""
        return hmac.new(self._key, f"csrf\0{curator}\0{nonce}".encode(), hashlib.sha256).hexdigest()

    def csrf_valid(self, curator: str, nonce: str | None, offered: str | None) -> bool:
        if not nonce or not offered:
            return False
        return hmac.compare_digest(self.csrf_token(curator, nonce), offered)


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def same_origin(host: str, origin: str | None, referer: str | None) -> bool:
    """Whether a post comes from a page of this server (``host``: the Host header). Origin
    decides when present (``null`` never matches); else Referer; neither: refused."""
    source = origin if origin is not None else referer
    if not source or source == "null":
        return False
    parts = urlsplit(source)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()
