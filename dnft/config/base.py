"""What every settings model shares: frozen, no unknown keys, and the name patterns."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"

ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"


class ConfigModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
