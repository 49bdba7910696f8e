"""``collections`` and ``regenerator``: which rules files run, and where renders are stored."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import model_validator

from dnft.config.base import ConfigModel


class CollectionRef(ConfigModel):
    """A collection rules file (it names the collection and its contract)."""

    file: Path


class StorageSettings(ConfigModel):
    """Where images and metadata are stored, content-addressed."""

    kind: Literal["local", "s3"] = "local"
    path: Path = Path(".dnft/blobs")  # kind: local
    bucket: str | None = None  # kind: s3 (credentials from the usual AWS_* environment)
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None

    @model_validator(mode="after")
    def _s3_bucket(self) -> StorageSettings:
        if self.kind == "s3" and not self.bucket:
            raise ValueError("storage kind s3 needs 'bucket'")
        return self


class RegeneratorSettings(ConfigModel):
    storage: StorageSettings = StorageSettings()
    # Base URL of `dnft api` as holders and marketplaces reach it; written into metadata.
    public_url: str = "http://127.0.0.1:8000"
    planner_group: str = "dnft-regenerator"
    render_group: str = "dnft-render"
