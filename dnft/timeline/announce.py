"""The metadata update of a public version (``dnft.metadata.update.v1``), as the pusher and
other consumers read it. Built in one place: the render worker announces auto-published
versions with it, and a curator's approval announces the approved one with it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from dnft.collection import BoundCollection
from dnft.kafka import OutgoingMessage
from schemas import METADATA_UPDATE_V1


def update_key(bound: BoundCollection, token_id: int) -> bytes:
    """Keyed by token, so one token's updates stay in order."""
    return f"{bound.chain_id}:{bound.contract}:{token_id}".encode()


def metadata_update(
    bound: BoundCollection, token_id: int, row: Mapping[str, Any], *, public_url: str, topic: str
) -> OutgoingMessage:
    """The update of version ``row["version"]`` (``row`` also holds metadata_sha256,
    metadata_cid, image_sha256 and created_at). Re-announcing one is harmless: consumers dedupe
    by (contract, token, version)."""
    created: datetime = row["created_at"]
    body = {
        "schema": METADATA_UPDATE_V1,
        "collection": bound.collection.name,
        "chain_id": bound.chain_id,
        "contract": bound.contract,
        "token_id": str(token_id),
        "version": int(row["version"]),
        "metadata_uri": f"{public_url}/tokens/{token_id}/versions/{row['version']}",
        "metadata_sha256": row["metadata_sha256"],
        "metadata_cid": row["metadata_cid"],
        "image_sha256": row["image_sha256"],
        "created_at": created.astimezone(UTC).isoformat(),
    }
    return OutgoingMessage(topic, orjson.dumps(body), key=update_key(bound, token_id))
