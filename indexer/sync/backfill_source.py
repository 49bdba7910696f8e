"""The backfill's source: a final block range as chunks ready to produce.

In-process first (a short range is done before a worker process could start: about 1.5 s);
once the rest is expected to take longer than ``backfill_worker_after_s``, the rest comes from
a :class:`~indexer.sync.backfill_worker.BackfillWorker`, leaving this process's GIL to the
producer. Either way each chunk's records are built from :func:`indexer.sync.historical.
read_range`. Nothing here touches Kafka or Postgres.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass

import structlog

from dnft.config import NetworkSettings, Settings
from dnft.kafka import KeyedRecord
from dnft.rpc import RpcClient, RpcObserver
from indexer.encode import ChunkEncoder, Encoded
from indexer.sync.backfill_worker import BackfillWorker, EncodedChunk
from indexer.sync.historical import RangeChunk, read_range

log = structlog.get_logger("dnft.indexer")


@dataclass(frozen=True, slots=True)
class BackfillChunk:
    """One chunk ready to produce: its last block, and the builder of its records (called
    once, on the producer's send thread)."""

    to_block: int
    records: Callable[[], Sequence[KeyedRecord]]


async def backfill_chunks(
    settings: Settings,
    network: NetworkSettings,
    client: RpcClient,
    encoder: ChunkEncoder,
    start: int,
    end: int,
    *,
    on_encoded: Callable[[Encoded], None],
    rpc_observer: RpcObserver,
) -> AsyncGenerator[BackfillChunk, None]:
    """The chunks of ``start..end``, in block order, ready to produce.

    In-process first (a short range is done before a worker process could start); once the
    rest is expected to take longer than ``backfill_worker_after_s``, the rest comes from a
    BackfillWorker, leaving this process's GIL to the producer. ``on_encoded`` gets each
    chunk's counts (in process: on the thread that builds the records), ``rpc_observer`` the
    worker's RPC attempts. Raises the RpcError, or BackfillWorkerError from the worker.
    """
    began, next_block = time.monotonic(), start
    async with contextlib.aclosing(read_range(client, encoder, network, start, end)) as chunks:
        async for chunk in chunks:
            yield BackfillChunk(chunk.to_block, _build_in_process(chunk, on_encoded))
            next_block = chunk.to_block + 1
            rate = (next_block - start) / max(time.monotonic() - began, 1e-6)
            if (end - next_block + 1) / rate > network.backfill_worker_after_s:
                break
    if next_block > end:
        return
    log.info(
        "backfill continues in a worker process",
        chain=network.chain_id,
        network=network.name,
        from_block=next_block,
    )
    worker = BackfillWorker(settings, network.name, next_block, end)
    try:
        async for encoded in worker.chunks():
            for method, endpoint, seconds, outcome in encoded.rpc:
                rpc_observer.on_request(method, endpoint, seconds, outcome)
            on_encoded(
                Encoded(
                    counts=encoded.counts,
                    undecodable=encoded.undecodable,
                    reasons=encoded.reasons,
                    cuts=encoded.cuts,
                )
            )
            yield BackfillChunk(encoded.to_block, _built(encoded))
    finally:
        await worker.aclose()


def _build_in_process(
    chunk: RangeChunk, on_encoded: Callable[[Encoded], None]
) -> Callable[[], Sequence[KeyedRecord]]:
    """Decoding and serialising run on the producer's send thread (off the event loop, and
    no third thread competing for the GIL)."""

    def build() -> Sequence[KeyedRecord]:
        encoded = chunk.encode()
        on_encoded(encoded)
        return encoded.messages

    return build


def _built(chunk: EncodedChunk) -> Callable[[], Sequence[KeyedRecord]]:
    return lambda: chunk.records
