"""The chain indexer: streams the configured contracts' events into Kafka, at least once, in
block order per token, with reorgs retracted.

``run_indexer`` is the daemon (``indexer.pipeline``); ``NetworkIndexer`` one network's runtime;
``replay_range`` re-publishes a block range; ``chain_head``/``checkpoints`` read where each
network stands (``dnft status``). The chain sync engine is ``indexer.sync``; the message
format is ``indexer.publish``; raw logs become messages through ``indexer.encode``.
"""

from indexer.checkpoint import Checkpoint, CheckpointStore, WindowEvent
from indexer.decode import DecodedEvent, EventDecoder
from indexer.encode import ChunkEncoder, Encoded, load_contracts
from indexer.pipeline import run_indexer
from indexer.publish import (
    EVENT_ID_HEADER,
    EventPublisher,
    event_id,
    jsonable,
    part_of,
    token_id_of,
)
from indexer.replay import ReplayRangeError, ReplayReport, replay_range, select_encoder
from indexer.runtime import NetworkIndexer
from indexer.status import CheckpointRow, chain_head, checkpoints
from indexer.sync import (
    BackfillWorkerError,
    RangeChunk,
    ReorgBeyondWindowError,
    finalized_block,
    read_range,
)

__all__ = [
    "EVENT_ID_HEADER",
    "BackfillWorkerError",
    "Checkpoint",
    "CheckpointRow",
    "CheckpointStore",
    "ChunkEncoder",
    "DecodedEvent",
    "Encoded",
    "EventDecoder",
    "EventPublisher",
    "NetworkIndexer",
    "RangeChunk",
    "ReorgBeyondWindowError",
    "ReplayRangeError",
    "ReplayReport",
    "WindowEvent",
    "chain_head",
    "checkpoints",
    "event_id",
    "finalized_block",
    "jsonable",
    "load_contracts",
    "part_of",
    "read_range",
    "replay_range",
    "run_indexer",
    "select_encoder",
    "token_id_of",
]
