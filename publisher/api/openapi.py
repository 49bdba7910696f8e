"""The OpenAPI 3.1 document of ``dnft api``, served at ``/openapi.json``.

Written out by hand next to the routes it describes; a test checks that every route the
application serves is listed here and nothing else. Pure; nothing blocks.
"""

from __future__ import annotations

from typing import Any

from publisher.api.validation import MAX_VERSION

_TOKEN_ID = {
    "name": "token_id",
    "in": "path",
    "required": True,
    "description": "uint256 token id in canonical decimal (no sign, exponent or leading zeros)",
    "schema": {"type": "string", "pattern": "^(0|[1-9][0-9]{0,77})$"},
}
_VERSION = {
    "name": "version",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_VERSION},
}
_SHA256 = {
    "name": "sha256",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
}
_ADDRESS = {
    "name": "address",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$"},
}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "400": _json(_ref("Error"), "malformed or out-of-range parameter"),
    "404": _json(_ref("Error"), "no such token, version, image or collection"),
    "429": _json(_ref("Error"), "rate limited; see Retry-After"),
}
_NOT_MODIFIED = {"304": {"description": "not modified (If-None-Match matched the ETag)"}}


def _get(
    summary: str, parameters: list[dict[str, Any]], responses: dict[str, Any], op: str
) -> dict[str, Any]:
    return {
        "get": {
            "operationId": op,
            "summary": summary,
            "parameters": parameters,
            "responses": responses,
        }
    }


def openapi_document(public_url: str) -> dict[str, Any]:
    """The document, with ``public_url`` as the server."""
    html = {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dnft metadata API",
            "version": "1",
            "description": (
                "Read-only ERC-721 metadata of dynamic NFTs: each token's current metadata, "
                "every version it had and why, content-addressed images, and the holders' "
                "gallery. Only GET and HEAD are served; other methods get 405. Each client is "
                "rate limited (429 with Retry-After). Errors are JSON {error, message}."
            ),
        },
        "servers": [{"url": public_url}],
        "paths": {
            "/tokens/{token_id}": _get(
                "Current metadata (ERC-721 JSON as stored; ETag is its sha256)",
                [_TOKEN_ID],
                {
                    "200": _json(_ref("Metadata"), "metadata of the latest version"),
                    **_NOT_MODIFIED,
                    **_ERRORS,
                },
                "getToken",
            ),
            "/tokens/{token_id}/versions": _get(
                "Every version, oldest first, with what triggered it",
                [
                    _TOKEN_ID,
                    _query("after", "versions after this one", {"type": "integer", "minimum": 0}),
                    _query(
                        "limit",
                        "page size",
                        {"type": "integer", "minimum": 1, "maximum": 500, "default": 100},
                    ),
                ],
                {
                    "200": _json(_ref("VersionList"), "a page of versions"),
                    **_NOT_MODIFIED,
                    **_ERRORS,
                },
                "listVersions",
            ),
            "/tokens/{token_id}/versions/{version}": _get(
                "One version's metadata (immutable)",
                [_TOKEN_ID, _VERSION],
                {
                    "200": _json(_ref("Metadata"), "metadata of that version"),
                    **_NOT_MODIFIED,
                    **_ERRORS,
                },
                "getVersion",
            ),
            "/tokens/{token_id}/events": _get(
                "Server-sent events: one `version` event per new version (id = version)",
                [
                    _TOKEN_ID,
                    _query(
                        "after",
                        "send versions after this one first (Last-Event-ID wins)",
                        {"type": "integer", "minimum": 0},
                    ),
                ],
                {
                    "200": {
                        "description": "event stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    "503": _json(_ref("Error"), "too many live clients"),
                    **_ERRORS,
                },
                "streamVersions",
            ),
            "/tokens/{token_id}/view": _get(
                "Gallery page of a token: its art, traits and timeline",
                [
                    _TOKEN_ID,
                    _query("version", "show this version", {"type": "integer", "minimum": 1}),
                ],
                {"200": html, **_ERRORS},
                "viewToken",
            ),
            "/images/{sha256}": _get(
                "An image by its sha256 (immutable)",
                [_SHA256],
                {
                    "200": {
                        "description": "the image",
                        "content": {
                            "image/png": {"schema": {"type": "string", "format": "binary"}}
                        },
                    },
                    **_NOT_MODIFIED,
                    **_ERRORS,
                },
                "getImage",
            ),
            "/collections/{address}": _get(
                "A collection by contract address, with its tokens' current versions",
                [
                    _ADDRESS,
                    _query(
                        "chain_id",
                        "when the address is on several chains",
                        {"type": "integer", "minimum": 1},
                    ),
                    _query("after", "tokens after this id", {"type": "string"}),
                    _query(
                        "limit",
                        "page size",
                        {"type": "integer", "minimum": 1, "maximum": 500, "default": 100},
                    ),
                ],
                {"200": _json(_ref("Collection"), "the collection"), **_NOT_MODIFIED, **_ERRORS},
                "getCollection",
            ),
            "/": _get(
                "Gallery: the collection's tokens",
                [_query("after", "tokens after this id", {"type": "string"})],
                {"200": html, **_ERRORS},
                "gallery",
            ),
            "/static/{name}": _get(
                "The gallery's stylesheet, script and icon",
                [
                    {
                        "name": "name",
                        "in": "path",
                        "required": True,
                        "schema": {
                            "type": "string",
                            "enum": ["gallery.css", "gallery.js", "favicon.svg"],
                        },
                    }
                ],
                {"200": {"description": "the file"}, **_NOT_MODIFIED, **_ERRORS},
                "staticFile",
            ),
            "/openapi.json": _get(
                "This document",
                [],
                {"200": _json({"type": "object"}, "OpenAPI 3.1"), **_NOT_MODIFIED},
                "openapi",
            ),
        },
        "components": {"schemas": _SCHEMAS},
    }


_STR = {"type": "string"}
_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {"error": _STR, "message": _STR},
    },
    "Metadata": {
        "type": "object",
        "description": "ERC-721 metadata with dnft's provenance block",
        "required": ["name", "image", "attributes"],
        "properties": {
            "name": _STR,
            "description": _STR,
            "image": _STR,
            "external_url": _STR,
            "attributes": {"type": "array", "items": {"type": "object"}},
            "provenance": {"type": "object"},
        },
    },
    "Trigger": {
        "type": "object",
        "required": ["kind", "label"],
        "properties": {
            "kind": {"enum": ["event", "feed", "retraction"]},
            "label": _STR,
            "event_id": _STR,
            "event": _STR,
            "block_number": {"type": "integer"},
            "feed": _STR,
            "traits": {"type": "array", "items": _STR},
        },
    },
    "Version": {
        "type": "object",
        "properties": {
            "version": {"type": "integer"},
            "created_at": {"type": "string", "format": "date-time"},
            "name": _STR,
            "traits": {"type": "object", "additionalProperties": _STR},
            "state_hash": _STR,
            "image_sha256": _STR,
            "image_cid": _STR,
            "image_url": _STR,
            "image_alt": _STR,
            "metadata_url": _STR,
            "metadata_sha256": _STR,
            "metadata_cid": _STR,
            "triggers": {"type": "array", "items": _ref("Trigger")},
            "triggers_omitted": {"type": "integer"},
            "changes": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"trait": _STR, "from": _STR, "to": _STR},
                },
            },
            "summary": _STR,
        },
    },
    "VersionList": {
        "type": "object",
        "properties": {
            "collection": _STR,
            "token_id": _STR,
            "versions": {"type": "array", "items": _ref("Version")},
            "next": {"type": ["string", "null"]},
        },
    },
    "Collection": {
        "type": "object",
        "properties": {
            "name": _STR,
            "description": _STR,
            "chain_id": {"type": "integer"},
            "contract": _STR,
            "tokens": {"type": "array", "items": {"type": "object"}},
            "next": {"type": ["string", "null"]},
        },
    },
}
