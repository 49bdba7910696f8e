"""One network's indexer: lead (or stand by), backfill to the final block, then follow the
head, publishing every configured contract event to Kafka and checkpointing only what Kafka
acknowledged.

The order of effects is the whole safety argument:

1. events go to Kafka and are acknowledged;
2. only then does the checkpoint move (Postgres, through the leader lock's connection).

A crash between 1 and 2 republishes the same events with the same ids; nothing is skipped.
Reorgs: retractions are acknowledged before the checkpoint rewinds to the common ancestor.

Fencing: the leader's lease is checked right before each produce (realtime blocks,
retractions, each backfill chunk) and each checkpoint move (the store's sessions), and a lost
lease cancels the network's work: a leader that wakes from a pause publishes nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncGenerator
from typing import assert_never

import structlog

from dnft import metrics
from dnft.config import NetworkSettings, Settings
from dnft.errors import ConfigError, RpcError
from dnft.kafka import AsyncProducer
from dnft.leader import LeaderLock, LeaseLost
from dnft.rpc import Header, PrometheusRpcObserver, RpcClient, get_block_headers
from indexer.backfill import publish_backfill
from indexer.checkpoint import CheckpointStore, WindowEvent
from indexer.encode import ChunkEncoder, Encoded
from indexer.sync import (
    MAX_BLOCKS_PER_STEP,
    BackfillChunk,
    Block,
    BlockRef,
    ChainMovedError,
    ChainWindow,
    Finalize,
    HeadWatcher,
    RealtimeSync,
    Reorg,
    ReorgBeyondWindowError,
    backfill_chunks,
    block_ref,
    finalized_block,
)

log = structlog.get_logger("dnft.indexer")


class NetworkIndexer:
    """The indexer of one network. ``state``, ``indexed_block``, ``head_latencies`` and
    ``reorg_depths`` are read by the daemon's readiness check, tests and benchmarks."""

    def __init__(self, settings: Settings, network: str, producer: AsyncProducer) -> None:
        self._settings = settings
        self.network: NetworkSettings = settings.network(network)
        self._producer = producer
        self._encoder = ChunkEncoder.from_settings(settings, network)
        if not self._encoder.contracts:
            raise ConfigError("contracts", f"no contract is configured on network {network!r}")
        self._publisher = self._encoder.publisher
        self._log = log.bind(chain=self.network.chain_id, network=network)
        self.state = "starting"  # starting | standby | backfill | realtime | stopped
        # Head notification -> Kafka acknowledgement, seconds, for the latest blocks.
        self.head_latencies: deque[float] = deque(maxlen=10_000)
        self.indexed_block = -1
        self.reorg_depths: list[int] = []  # depth of each reorg handled, in order
        self._rpc_observer = PrometheusRpcObserver(network)
        self._lock: LeaderLock | None = None  # while leading

    async def run(self, stopping: asyncio.Event) -> None:
        """Lead (or wait as standby), catch up, follow; returns when ``stopping`` is set.

        Raises ReorgBeyondWindowError (never papered over) and ConfigError; RPC, Kafka and
        Postgres failures are raised after the client's own retries are spent.
        """
        self.state = "standby"
        lock = LeaderLock(self._settings.postgres, "indexer", self.network.name)
        if not await lock.acquire(stopping):
            return
        try:
            await lock.while_leading(self._lead(lock, stopping))
        finally:
            await lock.release()

    async def _lead(self, lock: LeaderLock, stopping: asyncio.Event) -> None:
        self._lock = lock
        client = RpcClient(
            self.network.rpc_urls,
            timeout_s=self.network.request_timeout_s,
            max_in_flight=self.network.max_in_flight * 2,
            max_response_bytes=self.network.max_response_bytes,
            observer=self._rpc_observer,
        )
        heads = HeadWatcher(
            client,
            ws_url=self.network.ws_url,
            poll_interval_s=self.network.poll_interval_s,
            network=self.network.name,
        )
        try:
            store = CheckpointStore(lock, self.network.name)
            await heads.start()
            window = await self._catch_up(client, store, heads, stopping)
            if window is not None:
                await self._follow(client, store, heads, window, stopping)
        except ReorgBeyondWindowError:
            metrics.indexer_reorg_beyond_window.labels(self.network.name).set(1)
            raise
        finally:
            self.state = "stopped"
            metrics.indexer_following_head.labels(self.network.name).set(0)
            await heads.stop()
            await client.close()

    # --- historical ---------------------------------------------------------------------

    async def _catch_up(
        self, client: RpcClient, store: CheckpointStore, heads: HeadWatcher, stopping: asyncio.Event
    ) -> ChainWindow | None:
        """Backfill up to the final block; returns the window anchored there (None if
        stopped)."""
        window_blocks = await store.load_window()
        checkpoint = await store.load()
        head = heads.latest
        finalized = await finalized_block(client, self.network, head)
        self._set_head(head)
        if window_blocks:
            tip = window_blocks[-1]
            if tip.number >= finalized - MAX_BLOCKS_PER_STEP:
                return ChainWindow(window_blocks)  # close to the head: realtime catches up
            (now,) = await get_block_headers(client, [tip.number])
            if now.hash != tip.hash:
                return ChainWindow(window_blocks)  # realtime's first step reconciles the reorg
            start = tip.number + 1  # the whole window is final and canonical
        elif checkpoint is not None:
            start = checkpoint.block_number + 1
        else:
            start = min(c.settings.start_block for c in self._encoder.contracts.values())
        if start <= finalized:
            self.state = "backfill"
            self._log.info("backfill", from_block=start, to_block=finalized)
            chunks = self._fenced(
                backfill_chunks(
                    self._settings,
                    self.network,
                    client,
                    self._encoder,
                    start,
                    finalized,
                    on_encoded=self._account,
                    rpc_observer=self._rpc_observer,
                )
            )
            complete = await publish_backfill(
                chunks,
                self._producer,
                store,
                topic=self._publisher.topic,
                network=self.network.name,
                start=start,
                end=finalized,
                stopping=stopping,
                on_checkpoint=self._backfilled,
            )
            if not complete:
                return None
        anchor_number = max(finalized, start - 1)
        (anchor,) = await get_block_headers(client, [anchor_number])
        await store.anchor_window(block_ref(anchor))
        self._set_indexed(anchor)
        return ChainWindow([block_ref(anchor)])

    async def _fenced(
        self, chunks: AsyncGenerator[BackfillChunk, None]
    ) -> AsyncGenerator[BackfillChunk, None]:
        """``chunks``, each handed to the producer only while the lease is valid."""
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                self._fence()
                yield chunk

    def _fence(self) -> None:
        """Right before a side effect: raises LeaseLost unless this replica still leads."""
        if self._lock is None:
            raise LeaseLost(f"indexer {self.network.name}: not leading")
        self._lock.check()

    def _backfilled(self, block: int) -> None:
        self.indexed_block = block

    # --- realtime -----------------------------------------------------------------------

    async def _follow(
        self,
        client: RpcClient,
        store: CheckpointStore,
        heads: HeadWatcher,
        window: ChainWindow,
        stopping: asyncio.Event,
    ) -> None:
        self.state = "realtime"
        metrics.indexer_following_head.labels(self.network.name).set(1)
        if window.tip is not None:  # a restart with no new block must still export progress
            self._set_indexed(window.tip)
        self._log.info("following the head", from_block=window.tip.number if window.tip else None)
        addresses, _ = self._encoder.log_filter()
        sync = RealtimeSync(client, self.network, window, addresses)
        backoff = 0.1
        while not stopping.is_set():
            self._set_head(heads.latest)
            try:
                events = await sync.step(heads.latest)
            except ChainMovedError as exc:
                self._log.info("chain moved during a step; retrying", reason=str(exc))
                continue
            except RpcError as exc:
                self._log.warning("rpc failure while following", error=str(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10)
                continue
            backoff = 0.1
            if not events:
                await heads.wait(self.network.poll_interval_s)
            for event in events:
                match event:
                    case Block():
                        await self._publish_blocks(store, heads, event)
                    case Finalize(number=number):
                        await store.finalize(number)
                    case Reorg():
                        await self._retract(store, event)
                    case _:
                        assert_never(event)

    async def _publish_blocks(
        self, store: CheckpointStore, heads: HeadWatcher, block: Block
    ) -> None:
        """Publish the blocks' events, then (acknowledged) record the blocks with the
        retractions that would undo them and move the checkpoint to the last block."""
        timestamps = {h.number: h.timestamp for h in block.headers}
        encoded = self._encoder.encode(
            block.logs, timestamps, keep_events=True, final_block=block.finalized
        )
        self._account(encoded)
        messages = [self._publisher.outgoing(m) for m in encoded.messages]
        self._fence()
        await self._producer.send_many(messages)
        acked_at = time.monotonic()
        window_events = [
            WindowEvent(
                e.block_number,
                e.block_hash.lower(),
                eid.decode(),
                key.decode(),
                self._publisher.retraction_body(e),
            )
            for e, (key, _, eid) in zip(encoded.events, encoded.messages, strict=True)
        ]
        await store.advance_unfinalized([block_ref(h) for h in block.headers], window_events)
        for header in block.headers:
            seen = heads.seen_at.get(header.number)
            if seen is not None and header.number > self.indexed_block:
                self.head_latencies.append(acked_at - seen)
        self._set_indexed(block.headers[-1])

    async def _retract(self, store: CheckpointStore, reorg: Reorg) -> None:
        """Publish the retractions of the orphaned blocks' events, then (acknowledged) rewind
        the checkpoint to the common ancestor."""
        events = await store.events_after(reorg.ancestor.number)
        # Newest first: consumers undo effects in the reverse order they applied them.
        retractions = [self._publisher.retraction(e.retraction) for e in reversed(events)]
        self._fence()
        await self._producer.send_many(retractions)
        await store.rewind(reorg.ancestor)
        metrics.indexer_reorgs_total.labels(self.network.name).inc()
        metrics.indexer_reorg_depth_blocks.labels(self.network.name).observe(reorg.depth)
        self.indexed_block = reorg.ancestor.number
        self.reorg_depths.append(reorg.depth)
        self._log.warning(
            "reorg handled",
            ancestor=reorg.ancestor.number,
            depth=reorg.depth,
            retracted=len(retractions),
        )

    # --- metrics ------------------------------------------------------------------------

    def _account(self, encoded: Encoded) -> None:
        """Count a chunk's published logs per contract, and its undecodable ones. Thread-safe:
        the backfill calls it from the producer's send thread."""
        for name, count in encoded.counts.items():
            metrics.indexer_logs_total.labels(self.network.name, name).inc(count)
        for event, count in encoded.cuts.items():
            metrics.indexer_values_cut_total.labels(self.network.name, event).inc(count)
        if encoded.undecodable:
            # Not our event's shape (e.g. a same-signature event with other indexing): skip,
            # count and say where, rather than stop the stream.
            metrics.indexer_undecodable_logs_total.labels(self.network.name, "any").inc(
                encoded.undecodable
            )
            self._log.warning(
                "undecodable logs skipped", count=encoded.undecodable, first=encoded.reasons
            )

    def _set_head(self, head: int) -> None:
        metrics.indexer_head_block.labels(self.network.name).set(head)
        if self.indexed_block >= 0:
            lag = max(0, head - self.indexed_block)
            metrics.indexer_head_lag_blocks.labels(self.network.name).set(lag)

    def _set_indexed(self, header: Header | BlockRef) -> None:
        self.indexed_block = header.number
        metrics.indexer_indexed_block.labels(self.network.name).set(header.number)
        if isinstance(header, Header):
            lag_s = max(0.0, time.time() - header.timestamp)
            metrics.indexer_head_lag_seconds.labels(self.network.name).set(lag_s)
