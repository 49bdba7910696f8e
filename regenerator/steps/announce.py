"""Step: announce a batch's public versions on ``dnft.metadata.updates.v1``.

Each step adds the versions it made public (or found already public) with :meth:`add`;
:meth:`send` produces them all at once, in the order added, after the batch's last
transaction, and returns only once Kafka acknowledged them: the caller then commits the
jobs' offsets. A crash before that replays the batch, which announces the same versions again
(consumers dedupe by (contract, token, version)). ``add`` blocks on nothing; ``send`` raises
KafkaError.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dnft.collection import BoundCollection
from dnft.kafka import AsyncProducer, OutgoingMessage
from dnft.timeline import metadata_update


class Announcements:
    """The metadata updates of one batch of render jobs."""

    def __init__(self, *, topic: str, public_url: str) -> None:
        self._topic = topic
        self._public_url = public_url
        self.messages: list[OutgoingMessage] = []

    def add(self, bound: BoundCollection, token_id: int, row: Mapping[str, Any]) -> None:
        """Queue the update of public version ``row`` (version, metadata_sha256,
        metadata_cid, image_sha256, created_at) of a token."""
        self.messages.append(
            metadata_update(bound, token_id, row, public_url=self._public_url, topic=self._topic)
        )

    async def send(self, producer: AsyncProducer) -> None:
        """One produce for the batch, acknowledged before the caller commits its offsets."""
        await producer.send_many(self.messages)
