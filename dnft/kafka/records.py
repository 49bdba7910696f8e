"""The shapes of Kafka records as dnft sends and receives them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

# (key, value, header value) of a record for ``AsyncProducer.enqueue_records``; key and value
# may be slices of a larger buffer.
KeyedRecord = tuple[bytes | memoryview, bytes | memoryview, bytes]


class OutgoingMessage(NamedTuple):
    # A NamedTuple, not a frozen dataclass: the indexer builds hundreds of thousands per
    # second, and a frozen dataclass costs several times more to construct.
    topic: str
    value: bytes
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where the broker stored an acknowledged message."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class ConsumedMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int

    @property
    def next_offset(self) -> int:
        """The offset to commit once this message's side effects are durable."""
        return self.offset + 1
