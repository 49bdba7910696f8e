"""``postgres``: the database every daemon keeps its state in."""

from __future__ import annotations

from pydantic import Field, field_validator

from dnft.config.base import ConfigModel


class PostgresSettings(ConfigModel):
    dsn: str = Field(min_length=1)
    min_pool_size: int = Field(default=1, ge=0)
    max_pool_size: int = Field(default=10, ge=1)

    @field_validator("dsn")
    @classmethod
    def _scheme(cls, dsn: str) -> str:
        if not dsn.startswith(("postgres://", "postgresql://")):
            raise ValueError("expected a postgresql:// DSN")
        return dsn
