"""A token's timeline in Postgres: its public versions (``versions``), the render candidates
that did not go straight to them (``candidates``), curator decisions and their outbox
(``decisions``), the art-hash index (``arthash``) and the metadata update announcing a
version (``announce``). Ground: imports no daemon package."""

from dnft.timeline.announce import metadata_update, update_key
from dnft.timeline.arthash import (
    BANDS,
    HASH_BITS,
    MAX_INDEXED_DISTANCE,
    hamming,
    hash_bands,
    near_duplicates,
    set_art_hash,
)
from dnft.timeline.candidates import NewCandidate, insert_candidate
from dnft.timeline.decisions import ACTIONS, OUTBOX_BATCH, Action, Curator, Outcome, flush_outbox
from dnft.timeline.versions import (
    JobAction,
    NewVersion,
    copy_version,
    insert_version,
    job_action,
    lock_token,
    newest_version,
)

__all__ = [
    "ACTIONS",
    "BANDS",
    "HASH_BITS",
    "MAX_INDEXED_DISTANCE",
    "OUTBOX_BATCH",
    "Action",
    "Curator",
    "JobAction",
    "NewCandidate",
    "NewVersion",
    "Outcome",
    "copy_version",
    "flush_outbox",
    "hamming",
    "hash_bands",
    "insert_candidate",
    "insert_version",
    "job_action",
    "lock_token",
    "metadata_update",
    "near_duplicates",
    "newest_version",
    "set_art_hash",
    "update_key",
]
