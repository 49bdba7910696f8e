"""``api``: the read-only metadata API, the gallery and the curators' review queue."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from dnft.config.base import ConfigModel


class ApiRateLimitSettings(ConfigModel):
    """Per-client token bucket: ``burst`` requests at once, refilled at ``requests_per_s``."""

    requests_per_s: float = Field(default=20.0, gt=0, le=100_000)
    burst: int = Field(default=60, ge=1, le=1_000_000)
    # Clients remembered at once (least recently seen forgotten first): bounds memory.
    max_clients: int = Field(default=100_000, ge=1, le=10_000_000)


class CurateUserSettings(ConfigModel):
    """A curator who signs in with HTTP basic auth; only a hash of the password is stored."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    # pbkdf2_sha256$ITERATIONS$SALT$HASH (base64): `dnft curate-password` prints one.
    password_hash: str = Field(
        pattern=r"^pbkdf2_sha256\$[0-9]{1,8}\$[A-Za-z0-9+/=]{8,}\$[A-Za-z0-9+/=]{40,}$"
    )


class CurateSettings(ConfigModel):
    """``dnft api`` /curate: the review queue, reachable only with credentials."""

    enabled: bool = False
    # A bearer token (scripts): read from this environment variable or this mounted file.
    token_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    token_file: Path | None = None
    # The curator name decisions made with the bearer token are recorded under.
    token_curator: str = Field(default="token", pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    # People (browsers): HTTP basic auth.
    users: list[CurateUserSettings] = []
    # Password checks (PBKDF2, ~0.3 s of CPU each) run on their own threads, never on the
    # pool that serves images; beyond this many waiting, a login is refused (503).
    login_threads: int = Field(default=1, ge=1, le=16)
    login_queue: int = Field(default=8, ge=0, le=10_000)
    # Failed basic-auth logins per client address: this many at once, then one more per
    # `failed_logins_per_min` minute; beyond, 429 with Retry-After (before any PBKDF2 run).
    failed_logins_burst: int = Field(default=5, ge=1, le=10_000)
    failed_logins_per_min: float = Field(default=6.0, gt=0, le=60_000)
    # Failed logins of all clients together per minute (a minute's worth at once): bounds
    # the CPU a spread-out guessing attack costs. Known credentials are remembered and pass.
    failed_logins_global_per_min: float = Field(default=120.0, gt=0, le=600_000)
    # Unsent outbox messages (an approval's metadata update, a re-roll's job) are retried
    # this often.
    outbox_interval_s: float = Field(default=5.0, gt=0, le=3_600)

    @model_validator(mode="after")
    def _credentials(self) -> CurateSettings:
        if self.token_env is not None and self.token_file is not None:
            raise ValueError("set at most one of 'token_env' or 'token_file'")
        if self.enabled and self.token_env is None and self.token_file is None and not self.users:
            raise ValueError("/curate needs credentials: set token_env, token_file or users")
        names = [u.name for u in self.users]
        if len(set(names)) != len(names):
            raise ValueError("curator names must be unique")
        return self


# Private and loopback ranges: where a cluster's ingress or a local proxy connects from.
DEFAULT_PROXY_NETWORKS = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "127.0.0.0/8",
    "::1/128",
    "fc00::/7",
)


class ApiSettings(ConfigModel):
    """``dnft api``: the read-only metadata API and the gallery."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # The collection /tokens/{id} serves when several are configured (a collection name).
    collection: str | None = None
    rate_limit: ApiRateLimitSettings = ApiRateLimitSettings()
    # Current metadata may change at any time (marketplaces also get an ERC-4906 event).
    current_max_age_s: int = Field(default=60, ge=0, le=86_400)
    # Open server-sent event streams (gallery pages) this replica serves at once, and per
    # client address (beyond: 429).
    max_live_clients: int = Field(default=1_000, ge=1, le=100_000)
    max_live_per_client: int = Field(default=8, ge=1, le=100_000)
    # Reverse proxies in front of the API that each append the address they saw to
    # X-Forwarded-For. 0: the header is ignored and the client is the peer address; N: the
    # client is the N-th address from the right (what the outermost of your proxies saw).
    # Never more than the proxies you run: anything to their left is the client's to forge.
    trusted_proxies: int = Field(default=0, ge=0, le=16)
    # Where those proxies connect from (CIDRs): X-Forwarded-For is read only when the peer is
    # in one of them, and each hop is followed leftwards only while it is in one too (the first
    # address outside is the client). Anyone else reaching the API directly sets no address.
    trusted_proxy_networks: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PROXY_NETWORKS), max_length=256
    )
    # The public URL is https (TLS ends at a proxy in front): the CSRF cookie is Secure and
    # Strict-Transport-Security is sent. A direct TLS connection makes the cookie Secure too.
    public_https: bool = False
    hsts_max_age_s: int = Field(default=31_536_000, ge=0, le=63_072_000)
    keepalive_s: float = Field(default=15.0, gt=0, le=300)
    # Safety net beside LISTEN/NOTIFY: open pages also re-check their token this often.
    resync_s: float = Field(default=30.0, gt=0, le=3_600)
    # Images and metadata are immutable (content-addressed): kept in memory up to this size.
    blob_cache_bytes: int = Field(default=64 * 1024 * 1024, ge=0, le=16 * 1024**3)
    # The curators' review queue (regenerator collections with `publish: review`).
    curate: CurateSettings = CurateSettings()

    @field_validator("trusted_proxy_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        out = []
        for cidr in value:
            try:
                # strict: "10.0.0.1/8" (host bits set) is more likely a typo than a network.
                out.append(str(ipaddress.ip_network(cidr.strip(), strict=True)))
            except ValueError as exc:
                raise ValueError(f"{cidr!r} is not a network (CIDR): {exc}") from exc
        return out
