"""Historical sync: a block range as chunks, fetched, decoded and encoded.

The one place where a range of blocks becomes messages: ``eth_getLogs`` over the range
(``iter_logs``: ordered, concurrent, split where the provider refuses it), filtered to the
configured contracts' events, then decoded and serialised by the network's ``ChunkEncoder``.
The indexer's backfill (in process and in its worker process), ``dnft replay`` and the
audit's chain reader all read through :func:`read_range`.

:func:`read_range` yields each chunk's logs with the encoder; :meth:`RangeChunk.encode` does
the CPU work when the caller wants it (the backfill builds records on the producer's send
thread: :mod:`indexer.sync.backfill_source`). Nothing here touches Kafka or Postgres.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from dnft.config import NetworkSettings
from dnft.rpc import LogChunk, RpcClient, iter_logs
from indexer.encode import ChunkEncoder, Encoded


@dataclass(frozen=True, slots=True)
class RangeChunk:
    """The logs of blocks ``from_block..to_block`` (possibly none) and the encoder that turns
    them into messages."""

    logs: LogChunk
    encoder: ChunkEncoder

    @property
    def from_block(self) -> int:
        return self.logs.from_block

    @property
    def to_block(self) -> int:
        return self.logs.to_block

    def encode(self, *, keep_events: bool = False, final_block: int | None = None) -> Encoded:
        """Decode and serialise the chunk's events (pure CPU; see ``ChunkEncoder.encode``).
        ``final_block``: the network's final block, where the range may pass it (a replay
        with ``--allow-unfinalized``); None: every block of the range is final."""
        return self.encoder.encode(self.logs, keep_events=keep_events, final_block=final_block)


async def read_range(
    client: RpcClient, encoder: ChunkEncoder, network: NetworkSettings, start: int, end: int
) -> AsyncGenerator[RangeChunk, None]:
    """The chunks of ``start..end``, in block order, each exactly once (empty ones too), read
    with the encoder's log filter and the network's range and concurrency limits.

    Raises the client's RpcError (``RangeTooLargeError`` when a single block is refused).
    Close it (``contextlib.aclosing``) when leaving early: requests in flight are cancelled.
    """
    addresses, topics = encoder.log_filter()
    chunks = iter_logs(
        client,
        addresses,
        topics,
        start,
        end,
        max_range=network.max_block_range,
        in_flight=network.max_in_flight,
    )
    async with contextlib.aclosing(chunks):
        async for chunk in chunks:
            yield RangeChunk(chunk, encoder)
