"""The indexer daemon, assembled: one :class:`~indexer.runtime.NetworkIndexer` per network,
sharing one producer.

Per network, the pipeline runs::

    leader lock        one replica per network leads (Postgres advisory lock); others stand by
      -> catch up      backfill final blocks from the checkpoint (indexer.sync.backfill_chunks:
                       eth_getLogs -> decode -> encode, in process or in a worker process)
      -> follow        realtime sync from the final block (indexer.sync.RealtimeSync: new
                       blocks, finality, reorgs), the source of new events
      -> encode        indexer.encode.ChunkEncoder: logs -> dnft.chain.event.v1 messages
      -> Kafka         the chain-events topic, keyed per token; acknowledged before...
      -> checkpoint    ...the commit point: indexer.checkpoint moves (retractions of a reorg
                       are acknowledged before it rewinds)

The daemon's resources (producer, topics, ready gauge) are owned by one DaemonResources; each
network's own (leader lock, RPC client, head watcher) by its NetworkIndexer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog

from dnft import metrics
from dnft.config import Settings
from dnft.health import HealthServer
from dnft.resources import DaemonResources
from indexer.runtime import NetworkIndexer
from indexer.sync import ReorgBeyondWindowError

log = structlog.get_logger("dnft.indexer")

DAEMON = "indexer"
# How long a network's task may take to return once stopping is set, each.
_STOP_WAIT_S = 20


async def run_indexer(
    settings: Settings,
    networks: Sequence[str],
    stopping: asyncio.Event,
    health: HealthServer | None,
) -> None:
    """Run one NetworkIndexer per network until ``stopping``; the first failure stops all.

    Except a reorg deeper than the window: that network halts (it must not be papered over,
    and a restart would not help), while the process stays up, not ready, so Prometheus
    keeps scraping ``dnft_indexer_reorg_beyond_window`` and the alert fires; other networks
    go on. An operator replays or re-indexes, then restarts the daemon.

    Raises ConfigError for a network without contracts (before anything is ready), and the
    first network's failure otherwise.
    """
    async with DaemonResources(settings, DAEMON) as res:
        producer = await res.producer()
        await res.topics([settings.kafka.topics.chain_events])
        indexers = [NetworkIndexer(settings, name, producer) for name in networks]
        halted: dict[str, str] = {}
        if health is not None:

            async def ready() -> str | None:
                bad = [
                    f"{i.network.name}:{halted.get(i.network.name, i.state)}"
                    for i in indexers
                    if i.state == "stopped"
                ]
                return f"stopped: {', '.join(bad)}" if bad else None

            health.add_readiness_check("indexers", ready)
        res.ready()
        await _supervise(indexers, halted, stopping)


async def _supervise(
    indexers: Sequence[NetworkIndexer], halted: dict[str, str], stopping: asyncio.Event
) -> None:
    """Run the indexers as tasks; a failure stops all, a reorg beyond the window halts one
    network (noted in ``halted``) and leaves the daemon up, not ready, until ``stopping``."""
    tasks = {asyncio.create_task(i.run(stopping), name=i.network.name) for i in indexers}
    running = set(tasks)
    try:
        while running:
            done, running = await asyncio.wait(running, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                exc = task.exception()
                if isinstance(exc, ReorgBeyondWindowError):
                    halted[task.get_name()] = "reorg beyond window"
                    log.critical("network halted", network=task.get_name(), error=str(exc))
                elif exc is not None:
                    raise exc
        if halted:
            # Not ready from here on; DaemonResources would only clear the gauge on exit.
            metrics.daemon_ready.labels(DAEMON).set(0)
            await stopping.wait()
    finally:
        stopping.set()
        for task in tasks:
            if not task.done():
                await asyncio.wait({task}, timeout=_STOP_WAIT_S)
