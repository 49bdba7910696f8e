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
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
import structlog

from dnft import metrics
from dnft.errors import ConfigError, DecodeError, RpcError
from dnft.kafka import AsyncProducer, OutgoingMessage, PendingBatch
from dnft.leader import LeaderLock
from dnft.settings import ContractSettings, NetworkSettings, Settings
from indexer.checkpoint import BlockRef, Checkpoint, CheckpointStore, WindowEvent
from indexer.decode import DecodedEvent, EventDecoder
from indexer.observe import PrometheusRpcObserver
from indexer.progress import ProgressBar
from indexer.publish import EventPublisher
from indexer.rpc.client import RpcClient
from indexer.rpc.logs import get_block_headers, iter_logs
from indexer.rpc.types import Header, RawLog
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
from indexer.sync.window import ChainWindow, ReorgBeyondWindowError

log = structlog.get_logger("dnft.indexer")

# Backfill chunks whose acknowledgements may be outstanding at once: enough to keep the
# broker busy while the next chunk is decoded, few enough to bound memory.
PIPELINE_DEPTH = 3
# Yield to the event loop every so many decoded logs, so probes stay answered.
_DECODE_SLICE = 2000


@dataclass(frozen=True, slots=True)
class _Contract:
    settings: ContractSettings
    decoder: EventDecoder


def load_contracts(settings: Settings, network: str) -> dict[str, _Contract]:
    """address (lowercase) -> decoder; raises ConfigError naming the contract on a bad ABI."""
    out: dict[str, _Contract] = {}
    for contract in settings.contracts_on(network):
        key = f"contracts[{contract.name}]"
        try:
            raw = orjson.loads(Path(contract.abi).read_bytes())
        except OSError as exc:
            raise ConfigError(f"{key}.abi", f"cannot read ABI file {contract.abi}: {exc}") from None
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"{key}.abi", f"{contract.abi} is not JSON: {exc}") from None
        abi = raw.get("abi", raw) if isinstance(raw, dict) else raw
        if not isinstance(abi, list):
            raise ConfigError(f"{key}.abi", f"{contract.abi} holds no ABI list")
        try:
            decoder = EventDecoder.from_abi(abi, contract.include_events)
        except DecodeError as exc:
            raise ConfigError(f"{key}.include_events", str(exc)) from None
        out[contract.address.lower()] = _Contract(contract, decoder)
    return out


class NetworkIndexer:
    def __init__(self, settings: Settings, network: str, producer: AsyncProducer) -> None:
        self._settings = settings
        self.network: NetworkSettings = settings.network(network)
        self._producer = producer
        self._contracts = load_contracts(settings, network)
        if not self._contracts:
            raise ConfigError("contracts", f"no contract is configured on network {network!r}")
        self._addresses = sorted(self._contracts)
        self._topics = [sorted({t for c in self._contracts.values() for t in c.decoder.topic0s})]
        self._publisher = EventPublisher(
            chain_id=self.network.chain_id,
            network=network,
            topic=settings.kafka.topics.chain_events,
        )
        self._log = log.bind(chain=self.network.chain_id, network=network)
        self.state = "starting"  # starting | standby | backfill | realtime | stopped
        # Head notification -> Kafka acknowledgement, seconds, for the latest blocks.
        self.head_latencies: deque[float] = deque(maxlen=10_000)
        self.indexed_block = -1
        self.reorg_depths: list[int] = []  # depth of each reorg handled, in order

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
            observer=PrometheusRpcObserver(self.network.name),
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
        completed = True
        try:
            chunks = iter_logs(
                client,
                self._addresses,
                self._topics,
                start,
                end,
                max_range=self.network.max_block_range,
                in_flight=self.network.max_in_flight,
            )
            # aclosing: leaving early (stop) cancels the requests still in flight.
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    messages = await self._messages(chunk)
                    pending.append((chunk.to_block, await self._producer.enqueue(messages)))
                    while pending and (len(pending) > PIPELINE_DEPTH or pending[0][1].done()):
                        await self._confirm_chunk(store, pending.popleft(), progress, end)
                    if stopping.is_set():
                        completed = False
                        break
            while pending:
                await self._confirm_chunk(store, pending.popleft(), progress, end)
        finally:
            progress.close()
        return completed

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

    async def _decode_all(self, logs: Sequence[RawLog]) -> list[DecodedEvent]:
        """Our events among ``logs``, counted per contract; yields the loop now and then."""
        out: list[DecodedEvent] = []
        for i, raw in enumerate(logs):
            if i and i % _DECODE_SLICE == 0:
                await asyncio.sleep(0)
            event = self._decode(raw)
            if event is not None:
                out.append(event)
        for address, count in Counter(e.address.lower() for e in out).items():
            name = self._contracts[address].settings.name
            metrics.indexer_logs_total.labels(self.network.name, name).inc(count)
        return out

    async def _messages(self, logs: Sequence[RawLog]) -> list[OutgoingMessage]:
        message = self._publisher.message
        return [message(e, e.block_timestamp) for e in await self._decode_all(logs)]

    def _decode(self, raw: RawLog) -> DecodedEvent | None:
        contract = self._contracts.get(raw["address"].lower())
        if contract is None:
            return None
        try:
            event = contract.decoder.decode(raw)
        except DecodeError as exc:
            # Not our event's shape (e.g. a same-signature event with other indexing): skip,
            # count and say where, rather than stop the stream.
            metrics.indexer_undecodable_logs_total.labels(
                self.network.name, contract.settings.name
            ).inc()
            self._log.warning(
                "undecodable log",
                contract=contract.settings.name,
                block=raw["blockNumber"],
                tx=raw["transactionHash"],
                log_index=raw["logIndex"],
                error=str(exc),
            )
            return None
        if event is None or event.block_number < contract.settings.start_block:
            return None
        return event

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
        decoded = await self._decode_all(event.logs)
        messages = [
            self._publisher.message(e, e.block_timestamp or timestamps.get(e.block_number))
            for e in decoded
        ]
        await self._producer.send_many(messages)
        acked_at = time.monotonic()
        window_events = [
            WindowEvent(
                e.block_number,
                e.block_hash.lower(),
                m.headers[0][1].decode(),
                (m.key or b"").decode(),
                self._publisher.retraction_body(e),
            )
            for e, m in zip(decoded, messages, strict=True)
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
