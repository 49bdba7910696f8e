"""``postgres``: the database every daemon keeps its state in, and how long any call to it,
or a singleton's leader lease, may last."""

from __future__ import annotations

from pydantic import Field, field_validator

from dnft.config.base import ConfigModel


class PostgresSettings(ConfigModel):
    dsn: str = Field(min_length=1)
    min_pool_size: int = Field(default=1, ge=0)
    max_pool_size: int = Field(default=10, ge=1)
    # A singleton's lease: the server ends a lock session idle this long (the leader heartbeats
    # every lease_s / 3), so a frozen or vanished leader is replaced within about lease_s.
    # Below 3 s a loaded machine's scheduling jitter alone would cost the lease.
    lease_s: float = Field(default=10.0, ge=3.0, le=600.0)
    # Every query: a call that takes longer is cancelled and raises (nothing waits forever).
    command_timeout_s: float = Field(default=30.0, gt=0.0, le=3600.0)
    connect_timeout_s: float = Field(default=10.0, gt=0.0, le=600.0)
    # How long `dnft migrate` (and a daemon's start) waits for another migrator's lock.
    migration_lock_timeout_s: float = Field(default=60.0, gt=0.0, le=3600.0)

    @field_validator("dsn")
    @classmethod
    def _scheme(cls, dsn: str) -> str:
        if not dsn.startswith(("postgres://", "postgresql://")):
            raise ValueError("expected a postgresql:// DSN")
        return dsn

    @property
    def heartbeat_s(self) -> float:
        """How often a leader proves its lock session alive: three tries per lease."""
        return self.lease_s / 3
