"""Where a network's stream stands, persisted in Postgres after Kafka acknowledged it.

Two kinds of progress:

* finalized ranges (backfill): only the checkpoint moves;
* unfinalized blocks (realtime): each block's hash and parent and the retractions of its
  events are kept until the block is final, so a reorg found after a restart is still undone.
  :meth:`CheckpointStore.finalize` forgets them once final, in a transaction of its own: a
  crash before it only leaves rows that the next finalize deletes.

Every write is one transaction on the leader lock's connection, taken through
:meth:`dnft.leader.LeaderLock.session`: the lease is checked first (fencing), and a replica
whose lock session ended cannot move the checkpoint. Readers (audit, status) pass a plain
connection instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from dnft.db import SerialConnection, Sessions
from indexer.sync import BlockRef

_INSERT_BLOCK = (
    "insert into indexer_blocks (network, number, hash, parent_hash) "
    "values ($1, $2, $3, $4) on conflict (network, number) do update "
    "set hash = excluded.hash, parent_hash = excluded.parent_hash"
)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """All events in blocks <= ``block_number`` are in Kafka."""

    block_number: int
    block_hash: str


@dataclass(frozen=True, slots=True)
class WindowEvent:
    """An event published from an unfinalized block, with the retraction that undoes it."""

    block_number: int
    block_hash: str
    event_id: str
    message_key: str
    retraction: dict[str, Any]


class CheckpointStore:
    """One network's checkpoint on ``source``: a leader lock (each unit of work fenced and
    on the lock's session) or a plain asyncpg connection."""

    def __init__(self, source: Sessions | Any, network: str) -> None:
        self._sessions: Sessions = (
            source if hasattr(source, "session") else SerialConnection(source)
        )
        self._network = network

    async def load(self) -> Checkpoint | None:
        async with self._sessions.session() as conn:
            row = await conn.fetchrow(
                "select block_number, block_hash from indexer_checkpoints where network = $1",
                self._network,
            )
        return None if row is None else Checkpoint(row["block_number"], row["block_hash"])

    async def load_window(self) -> list[BlockRef]:
        async with self._sessions.session() as conn:
            rows = await conn.fetch(
                "select number, hash, parent_hash from indexer_blocks where network = $1 "
                "order by number",
                self._network,
            )
        return [BlockRef(r["number"], r["hash"], r["parent_hash"]) for r in rows]

    async def advance_finalized(self, checkpoint: Checkpoint) -> None:
        """Move the checkpoint over a finalized range (no window bookkeeping needed)."""
        async with self._sessions.session() as conn, conn.transaction():
            await _upsert(conn, self._network, checkpoint)

    async def advance_unfinalized(
        self, blocks: Sequence[BlockRef], events: Sequence[WindowEvent]
    ) -> None:
        """Record unfinalized blocks and their events, and move the checkpoint to the last
        block."""
        if not blocks:
            return
        last = blocks[-1]
        async with self._sessions.session() as conn, conn.transaction():
            await conn.executemany(
                _INSERT_BLOCK,
                [(self._network, b.number, b.hash, b.parent_hash) for b in blocks],
            )
            if events:
                await conn.executemany(
                    "insert into indexer_window_events (network, block_number, block_hash, "
                    "event_id, message_key, retraction) values ($1, $2, $3, $4, $5, $6) "
                    "on conflict (network, event_id) do nothing",
                    [
                        (
                            self._network,
                            e.block_number,
                            e.block_hash,
                            e.event_id,
                            e.message_key,
                            orjson.dumps(e.retraction).decode(),
                        )
                        for e in events
                    ],
                )
            await _upsert(conn, self._network, Checkpoint(last.number, last.hash))

    async def finalize(self, finalized: int) -> None:
        """Forget blocks below ``finalized`` and events at or below it: they can no longer
        be reorganised. The checkpoint does not move."""
        async with self._sessions.session() as conn, conn.transaction():
            await self._forget_final(conn, finalized)

    async def anchor_window(self, anchor: BlockRef) -> None:
        """Start the window afresh at ``anchor``, a final block all events up to which are in
        Kafka: record it, forget every block and event below it, checkpoint it. One
        transaction, so a restart never finds the anchor beside an older, unlinked window."""
        async with self._sessions.session() as conn, conn.transaction():
            await conn.execute(
                _INSERT_BLOCK,
                self._network,
                anchor.number,
                anchor.hash,
                anchor.parent_hash,
            )
            await self._forget_final(conn, anchor.number)
            await _upsert(conn, self._network, Checkpoint(anchor.number, anchor.hash))

    async def _forget_final(self, conn: Any, finalized: int) -> None:
        # Keep the finalized anchor block itself: the next block's parentHash links to it.
        await conn.execute(
            "delete from indexer_blocks where network = $1 and number < $2",
            self._network,
            finalized,
        )
        await conn.execute(
            "delete from indexer_window_events where network = $1 and block_number <= $2",
            self._network,
            finalized,
        )

    async def events_after(self, ancestor: int) -> list[WindowEvent]:
        """Events published from blocks above ``ancestor``, in publish order."""
        async with self._sessions.session() as conn:
            rows = await conn.fetch(
                "select block_number, block_hash, event_id, message_key, retraction "
                "from indexer_window_events where network = $1 and block_number > $2 "
                "order by block_number, event_id",
                self._network,
                ancestor,
            )
        return [
            WindowEvent(
                r["block_number"],
                r["block_hash"],
                r["event_id"],
                r["message_key"],
                orjson.loads(r["retraction"]),
            )
            for r in rows
        ]

    async def rewind(self, ancestor: BlockRef) -> None:
        """After the retractions are acknowledged: forget orphaned blocks, checkpoint the
        common ancestor."""
        async with self._sessions.session() as conn, conn.transaction():
            await conn.execute(
                "delete from indexer_blocks where network = $1 and number > $2",
                self._network,
                ancestor.number,
            )
            await conn.execute(
                "delete from indexer_window_events where network = $1 and block_number > $2",
                self._network,
                ancestor.number,
            )
            await _upsert(conn, self._network, Checkpoint(ancestor.number, ancestor.hash))


async def _upsert(conn: Any, network: str, checkpoint: Checkpoint) -> None:
    await conn.execute(
        "insert into indexer_checkpoints (network, block_number, block_hash) "
        "values ($1, $2, $3) on conflict (network) do update set "
        "block_number = excluded.block_number, block_hash = excluded.block_hash, "
        "updated_at = now()",
        network,
        checkpoint.block_number,
        checkpoint.block_hash,
    )
