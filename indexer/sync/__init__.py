"""The chain sync engine: historical chunks of a block range, and realtime following of the
head with reorg handling.

It knows blocks, hashes, logs and the confirmation policy, and turns a range's logs into
encoded messages (``historical``); it never touches Kafka or Postgres. What to do with the
events (publish, checkpoint, retract) is the caller's: ``indexer.runtime`` and
``indexer.backfill``.

- ``types``: the vocabulary (``BlockRef``) and realtime's closed event set
  (``Block | Finalize | Reorg``);
- ``historical``: ``read_range`` (fetch -> decode -> encode, chunk by chunk) and the
  backfill's source ``backfill_chunks`` (in process, then a ``BackfillWorker`` process);
- ``realtime``: ``RealtimeSync``, one step at a time towards the head;
- ``heads``: ``HeadWatcher``, newHeads over WebSocket or polling;
- ``window``: ``ChainWindow``, the unfinalized blocks linked by parentHash;
- ``finality``: ``finalized_block``, the confirmation policy, and ``finality_of`` a block.
"""

from indexer.sync.backfill_source import BackfillChunk, backfill_chunks
from indexer.sync.backfill_worker import BackfillWorker, BackfillWorkerError, EncodedChunk
from indexer.sync.finality import final_label, finality_of, finalized_block
from indexer.sync.heads import HeadWatcher
from indexer.sync.historical import RangeChunk, read_range
from indexer.sync.realtime import MAX_BLOCKS_PER_STEP, RealtimeSync
from indexer.sync.types import (
    Block,
    BlockRef,
    ChainMovedError,
    Finalize,
    RealtimeEvent,
    Reorg,
    block_ref,
)
from indexer.sync.window import ChainWindow, ReorgBeyondWindowError

__all__ = [
    "MAX_BLOCKS_PER_STEP",
    "BackfillChunk",
    "BackfillWorker",
    "BackfillWorkerError",
    "Block",
    "BlockRef",
    "ChainMovedError",
    "ChainWindow",
    "EncodedChunk",
    "Finalize",
    "HeadWatcher",
    "RangeChunk",
    "RealtimeEvent",
    "RealtimeSync",
    "Reorg",
    "ReorgBeyondWindowError",
    "backfill_chunks",
    "block_ref",
    "final_label",
    "finality_of",
    "finalized_block",
    "read_range",
]
