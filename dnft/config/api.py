"""``api``: the read-only metadata API, the gallery and the curators' review queue."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from dnft.config.base import ConfigModel


class ApiRateLimitSettings(ConfigModel):
    """Per-client token bucket: ``burst`` requests at once, refilled at ``requests_per_s``."""

    requests_per_s: float = Field(default=20.0, gt=0, le=100_000)
    burst: int = Field(default=60, ge=1, le=1_000_000)
    # Clients remembered at once (least recently seen forgotten first): bounds memory.
    max_clients: int = Field(default=100_000, ge=1, le=10_000_000)
    # Behind a reverse proxy, the client is the last X-Forwarded-For address (the one the
    # proxy saw). Only set this when a proxy you run always sets the header.
    trust_forwarded_for: bool = False


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


class ApiSettings(ConfigModel):
    """``dnft api``: the read-only metadata API and the gallery."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # The collection /tokens/{id} serves when several are configured (a collection name).
    collection: str | None = None
    rate_limit: ApiRateLimitSettings = ApiRateLimitSettings()
    # Current metadata may change at any time (marketplaces also get an ERC-4906 event).
    current_max_age_s: int = Field(default=60, ge=0, le=86_400)
    # Open server-sent event streams (gallery pages) this replica serves at once.
    max_live_clients: int = Field(default=1_000, ge=1, le=100_000)
    keepalive_s: float = Field(default=15.0, gt=0, le=300)
    # Safety net beside LISTEN/NOTIFY: open pages also re-check their token this often.
    resync_s: float = Field(default=30.0, gt=0, le=3_600)
    # Images and metadata are immutable (content-addressed): kept in memory up to this size.
    blob_cache_bytes: int = Field(default=64 * 1024 * 1024, ge=0, le=16 * 1024**3)
    # The curators' review queue (regenerator collections with `publish: review`).
    curate: CurateSettings = CurateSettings()
