"""The contracts between dnft's parts: message schemas, metadata schema, migrations, ABIs.

Only data lives here (read from package files); no network or database I/O.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from dnft.errors import DecodeError

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
    "validate_message",
    "validate_metadata",
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


@cache
def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(load_schema(name))


def validate_message(message: dict[str, Any]) -> str:
    """Validate against the schema the message names in its ``schema`` field; returns that name.

    Raises DecodeError with the failing JSON path and reason.
    """
    name = message.get("schema")
    if not isinstance(name, str) or name not in MESSAGE_SCHEMAS:
        raise DecodeError(f"message has no known 'schema' field (got {name!r})")
    _check(name, message)
    return name


def validate_metadata(document: dict[str, Any]) -> None:
    _check(ERC721_METADATA_V1, document)


def _check(name: str, document: dict[str, Any]) -> None:
    try:
        _validator(name).validate(document)
    except ValidationError as exc:
        path = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise DecodeError(f"{name}: {path}: {exc.message}") from None
