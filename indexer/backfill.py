"""Backfill: publish a range of final blocks to Kafka, checkpointing chunk by chunk.

Chunks come in block order from ``indexer.sync.backfill_chunks``. Each is enqueued to the
producer (its records built on the send thread) and up to :data:`PIPELINE_DEPTH` chunks'
acknowledgements may be outstanding, so the broker stays busy while the next chunk is read.
The checkpoint moves in block order and only over chunks Kafka acknowledged: a crash
republishes at most the unacknowledged chunks, with the same event ids.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncGenerator, Callable

from dnft import metrics
from dnft.kafka import AsyncProducer, PendingBatch
from dnft.progress import ProgressBar
from indexer.checkpoint import Checkpoint, CheckpointStore
from indexer.publish import EVENT_ID_HEADER
from indexer.sync import BackfillChunk

# Chunks whose acknowledgements may be outstanding at once: enough to keep the broker busy
# while the next chunk is decoded, few enough to bound memory.
PIPELINE_DEPTH = 3


async def publish_backfill(
    chunks: AsyncGenerator[BackfillChunk, None],
    producer: AsyncProducer,
    store: CheckpointStore,
    *,
    topic: str,
    network: str,
    start: int,
    end: int,
    stopping: asyncio.Event,
    on_checkpoint: Callable[[int], None],
) -> bool:
    """Publish ``chunks`` (of ``start..end``) to ``topic``; True when complete, False if
    ``stopping`` was set (what was acknowledged by then is checkpointed).

    ``on_checkpoint(block)`` is called after each checkpoint move. Raises the producer's
    KafkaError, Postgres errors, and whatever ``chunks`` raises; closes ``chunks`` on the way
    out (requests in flight are cancelled, a worker process stopped).
    """
    progress = ProgressBar(f"{network} backfill", start, end)
    pending: deque[tuple[int, PendingBatch]] = deque()

    async def confirm(to_block: int, batch: PendingBatch) -> None:
        await batch.acked()
        # Mid-range hashes are not needed: these blocks are final; the anchor gets a hash.
        await store.advance_finalized(Checkpoint(to_block, ""))
        on_checkpoint(to_block)
        metrics.indexer_indexed_block.labels(network).set(to_block)
        metrics.indexer_backfill_remaining_blocks.labels(network).set(end - to_block)
        progress.update(to_block, len(batch))

    try:
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                batch = await producer.enqueue_records(topic, EVENT_ID_HEADER, chunk.records)
                pending.append((chunk.to_block, batch))
                while pending and (len(pending) > PIPELINE_DEPTH or pending[0][1].done()):
                    await confirm(*pending.popleft())
                if stopping.is_set():
                    break
        while pending:
            await confirm(*pending.popleft())
    finally:
        progress.close()
    return not stopping.is_set()
