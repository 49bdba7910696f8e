"""One network's indexer: backfill to the final block, then follow the head, publishing every
configured contract event to Kafka and checkpointing only what Kafka acknowledged.

The order of effects is the whole safety argument:

1. events go to Kafka and are acknowledged;
2. only then does the checkpoint move (Postgres, through the leader lock's connection).

A crash between 1 and 2 republishes the same events with the same ids; nothing is skipped.
Reorgs: retractions are acknowledged before the checkpoint rewinds to the common ancestor.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Sequence

import structlog

from dnft import metrics
from dnft.config import NetworkSettings, Settings
from dnft.errors import ConfigError, RpcError
from dnft.kafka import AsyncProducer, KeyedRecord, PendingBatch
from dnft.leader import LeaderLock
from dnft.progress import ProgressBar
from dnft.rpc.client import RpcClient
from dnft.rpc.logs import get_block_headers, iter_logs
from dnft.rpc.observe import PrometheusRpcObserver
from dnft.rpc.types import Header, RawLog
from indexer.backfill_worker import BackfillWorker, EncodedChunk
from indexer.checkpoint import Checkpoint, CheckpointStore, WindowEvent
from indexer.encode import ChunkEncoder, Encoded
from indexer.publish import EVENT_ID_HEADER
from indexer.sync.heads import HeadWatcher
from indexer.sync.realtime import (
    MAX_BLOCKS_PER_STEP,
    ChainMovedError,
    NewBlocks,
    RealtimeSync,
    Reorg,
    block_ref,
    finalized_block,
)
from indexer.sync.types import BlockRef
from indexer.sync.window import ChainWindow, ReorgBeyondWindowError

log = structlog.get_logger("dnft.indexer")

# Backfill chunks whose acknowledgements may be outstanding at once: enough to keep the
# broker busy while the next chunk is decoded, few enough to bound memory.
PIPELINE_DEPTH = 3


class NetworkIndexer:
    def __init__(self, settings: Settings, network: str, producer: AsyncProducer) -> None:
        self._settings = settings
        self.network: NetworkSettings = settings.network(network)
        self._producer = producer
        self._encoder = ChunkEncoder.from_settings(settings, network)
        self._contracts = self._encoder.contracts
        if not self._contracts:
            raise ConfigError("contracts", f"no contract is configured on network {network!r}")
        self._addresses, self._topics = self._encoder.log_filter()
        self._publisher = self._encoder.publisher
        self._log = log.bind(chain=self.network.chain_id, network=network)
        self.state = "starting"  # starting | standby | backfill | realtime | stopped
        # Head notification -> Kafka acknowledgement, seconds, for the latest blocks.
        self.head_latencies: deque[float] = deque(maxlen=10_000)
        self.indexed_block = -1
        self.reorg_depths: list[int] = []  # depth of each reorg handled, in order
        self._rpc_observer = PrometheusRpcObserver(network)

    async def run(self, stopping: asyncio.Event) -> None:
        """Lead (or wait as standby), catch up, follow; returns when ``stopping`` is set.

        Raises ReorgBeyondWindowError (never papered over) and ConfigError; RPC, Kafka and
        Postgres failures are raised after the client's own retries are spent.
        """
        self.state = "standby"
        lock = LeaderLock(self._settings.postgres.dsn, "indexer", self.network.name)
        if not await lock.acquire(stopping):
            return
        client = RpcClient(
            self.network.rpc_urls,
            timeout_s=self.network.request_timeout_s,
            max_in_flight=self.network.max_in_flight * 2,
            observer=self._rpc_observer,
        )
        heads = HeadWatcher(
            client,
            ws_url=self.network.ws_url,
            poll_interval_s=self.network.poll_interval_s,
            network=self.network.name,
        )
        try:
            store = CheckpointStore(lock.connection, self.network.name)
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
            await lock.release()

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
            start = min(c.settings.start_block for c in self._contracts.values())
        if start <= finalized:
            self.state = "backfill"
            if not await self._backfill(client, store, start, finalized, stopping):
                return None
        anchor_number = max(finalized, start - 1)
        (anchor,) = await get_block_headers(client, [anchor_number])
        await store.advance_unfinalized([block_ref(anchor)], [], anchor.number)
        self._set_indexed(anchor)
        return ChainWindow([block_ref(anchor)])

    async def _backfill(
        self,
        client: RpcClient,
        store: CheckpointStore,
        start: int,
        end: int,
        stopping: asyncio.Event,
    ) -> bool:
        """Publish [start, end] chunk by chunk; True when complete, False if stopped."""
        self._log.info("backfill", from_block=start, to_block=end)
        progress = ProgressBar(f"{self.network.name} backfill", start, end)
        pending: deque[tuple[int, PendingBatch]] = deque()
        chunks = self._backfill_chunks(client, start, end)
        try:
            # aclosing: leaving early (stop) cancels requests in flight, stops the worker.
            async with contextlib.aclosing(chunks):
                async for to_block, build in chunks:
                    batch = await self._producer.enqueue_records(
                        self._publisher.topic, EVENT_ID_HEADER, build
                    )
                    pending.append((to_block, batch))
                    while pending and (len(pending) > PIPELINE_DEPTH or pending[0][1].done()):
                        await self._confirm_chunk(store, pending.popleft(), progress, end)
                    if stopping.is_set():
                        break
            while pending:
                await self._confirm_chunk(store, pending.popleft(), progress, end)
        finally:
            progress.close()
        return not stopping.is_set()

    async def _backfill_chunks(
        self, client: RpcClient, start: int, end: int
    ) -> AsyncGenerator[tuple[int, Callable[[], Sequence[KeyedRecord]]], None]:
        """(last block, records builder) per chunk of [start, end], in block order.

        In-process first (a short range is done before a worker process could start); once
        the rest is expected to take longer than ``backfill_worker_after_s``, the rest comes
        from a BackfillWorker, leaving this process's GIL to the producer.
        """
        began, next_block = time.monotonic(), start
        chunks = iter_logs(
            client,
            self._addresses,
            self._topics,
            start,
            end,
            max_range=self.network.max_block_range,
            in_flight=self.network.max_in_flight,
        )
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                yield chunk.to_block, self._encode_in_process(chunk)
                next_block = chunk.to_block + 1
                rate = (next_block - start) / max(time.monotonic() - began, 1e-6)
                if (end - next_block + 1) / rate > self.network.backfill_worker_after_s:
                    break
        if next_block > end:
            return
        self._log.info("backfill continues in a worker process", from_block=next_block)
        worker = BackfillWorker(self._settings, self.network.name, next_block, end)
        try:
            async for encoded in worker.chunks():
                self._account_chunk(encoded)
                yield encoded.to_block, _records_of(encoded)
        finally:
            await worker.aclose()

    def _encode_in_process(self, logs: list[RawLog]) -> Callable[[], Sequence[KeyedRecord]]:
        """Decoding and serialising run on the producer's send thread (off the event loop,
        and no third thread competing for the GIL)."""

        def build() -> Sequence[KeyedRecord]:
            encoded = self._encoder.encode(logs)
            self._account(encoded)
            return encoded.messages

        return build

    def _account_chunk(self, chunk: EncodedChunk) -> None:
        for method, endpoint, seconds, outcome in chunk.rpc:
            self._rpc_observer.on_request(method, endpoint, seconds, outcome)
        encoded = Encoded(counts=chunk.counts, undecodable=chunk.undecodable)
        encoded.reasons = chunk.reasons
        self._account(encoded)

    def _account(self, encoded: Encoded) -> None:
        for name, count in encoded.counts.items():
            metrics.indexer_logs_total.labels(self.network.name, name).inc(count)
        if encoded.undecodable:
            # Not our event's shape (e.g. a same-signature event with other indexing): skip,
            # count and say where, rather than stop the stream.
            metrics.indexer_undecodable_logs_total.labels(self.network.name, "any").inc(
                encoded.undecodable
            )
            self._log.warning(
                "undecodable logs skipped", count=encoded.undecodable, first=encoded.reasons
            )

    async def _confirm_chunk(
        self,
        store: CheckpointStore,
        item: tuple[int, PendingBatch],
        progress: ProgressBar,
        end: int,
    ) -> None:
        to_block, batch = item
        await batch.acked()
        # Mid-range hashes are not needed: these blocks are final; the anchor gets a hash.
        await store.advance_finalized(Checkpoint(to_block, ""))
        self.indexed_block = to_block
        metrics.indexer_indexed_block.labels(self.network.name).set(to_block)
        metrics.indexer_backfill_remaining_blocks.labels(self.network.name).set(end - to_block)
        progress.update(to_block, len(batch))

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
        sync = RealtimeSync(client, self.network, window, self._addresses)
        backoff = 0.1
        while not stopping.is_set():
            self._set_head(heads.latest)
            try:
                event = await sync.step(heads.latest)
            except ChainMovedError as exc:
                self._log.info("chain moved during a step; retrying", reason=str(exc))
                continue
            except RpcError as exc:
                self._log.warning("rpc failure while following", error=str(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10)
                continue
            backoff = 0.1
            if event is None:
                await heads.wait(self.network.poll_interval_s)
            elif isinstance(event, Reorg):
                await self._retract(store, event)
            else:
                await self._publish_blocks(store, heads, event)

    async def _publish_blocks(
        self, store: CheckpointStore, heads: HeadWatcher, event: NewBlocks
    ) -> None:
        timestamps = {h.number: h.timestamp for h in event.headers}
        encoded = self._encoder.encode(event.logs, timestamps, keep_events=True)
        self._account(encoded)
        messages = [self._publisher.outgoing(m) for m in encoded.messages]
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
        refs = [block_ref(h) for h in event.headers]
        await store.advance_unfinalized(refs, window_events, event.finalized)
        for header in event.headers:
            seen = heads.seen_at.get(header.number)
            if seen is not None and header.number > self.indexed_block:
                self.head_latencies.append(acked_at - seen)
        self._set_indexed(event.headers[-1])

    async def _retract(self, store: CheckpointStore, reorg: Reorg) -> None:
        events = await store.events_after(reorg.ancestor.number)
        # Newest first: consumers undo effects in the reverse order they applied them.
        retractions = [self._publisher.retraction(e.retraction) for e in reversed(events)]
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


def _records_of(chunk: EncodedChunk) -> Callable[[], Sequence[KeyedRecord]]:
    return lambda: chunk.records
