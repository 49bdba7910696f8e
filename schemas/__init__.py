"""The contracts between dnft's parts: message schemas, metadata schema, migrations, ABIs.

Only data lives here (read from package files); no network or database I/O, and no import
of dnft: validating a document against these schemas is :mod:`dnft.validation`.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import orjson

CHAIN_EVENT_V1 = "dnft.chain.event.v1"
CHAIN_RETRACTION_V1 = "dnft.chain.retraction.v1"
ORACLE_OBSERVATION_V1 = "dnft.oracle.observation.v1"
RENDER_JOB_V1 = "dnft.render.job.v1"
METADATA_UPDATE_V1 = "dnft.metadata.update.v1"
MESSAGE_SCHEMAS = (
    CHAIN_EVENT_V1,
    CHAIN_RETRACTION_V1,
    ORACLE_OBSERVATION_V1,
    RENDER_JOB_V1,
    METADATA_UPDATE_V1,
)
ERC721_METADATA_V1 = "dnft.metadata.erc721.v1"

__all__ = [
    "CHAIN_EVENT_V1",
    "CHAIN_RETRACTION_V1",
    "ERC721_METADATA_V1",
    "MESSAGE_SCHEMAS",
    "METADATA_UPDATE_V1",
    "ORACLE_OBSERVATION_V1",
    "RENDER_JOB_V1",
    "load_schema",
]


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The JSON Schema named ``name`` (a message kind or the ERC-721 metadata schema)."""
    if name == ERC721_METADATA_V1:
        path = resources.files("schemas").joinpath("metadata", "erc721.v1.json")
    elif name in MESSAGE_SCHEMAS:
        path = resources.files("schemas").joinpath("messages", f"{name}.json")
    else:
        raise KeyError(f"unknown schema {name!r}; known: {(*MESSAGE_SCHEMAS, ERC721_METADATA_V1)}")
    schema: dict[str, Any] = orjson.loads(path.read_bytes())
    return schema
