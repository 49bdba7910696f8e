"""Documents checked against dnft's JSON Schemas (``schemas/``): messages and ERC-721 metadata.

Every failure is a :class:`~dnft.errors.DecodeError` naming the failing JSON path and why.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from dnft.errors import DecodeError
from schemas import ERC721_METADATA_V1, MESSAGE_SCHEMAS, load_schema


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
