"""`dnft pusher`: metadata updates from Kafka to on-chain announcements, each exactly once.

Wiring only: a singleton under ``LeaderLock("pusher", leader_scope)`` (standbys wait); the
consumer (:class:`~dnft.stream.StreamProcessor` on ``kafka.topics.metadata_updates``, group
``pusher.group``) records updates in the outbox before committing offsets; one
:class:`~publisher.pusher.sender.ChainPusher` per network turns the outbox into
transactions; a gauge task exports pending updates and the oldest one's age.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Sequence
from typing import Any, Final

import structlog

from dnft import metrics
from dnft.config import Settings
from dnft.db import create_pool
from dnft.errors import ConfigError
from dnft.kafka import AsyncConsumer, AsyncProducer, ensure_topics
from dnft.leader import LeaderLock
from dnft.rpc.client import RpcClient
from dnft.stream import StreamProcessor, json_decoder
from publisher.pusher.chain import Chain
from publisher.pusher.intake import Intake
from publisher.pusher.outbox import Outbox
from publisher.pusher.sender import ChainPusher, PushTarget
from publisher.pusher.signer import Signer
from schemas import METADATA_UPDATE_V1

log = structlog.get_logger("dnft.pusher")

GAUGES_EVERY_S: Final = 2.0
LOCK_CHECK_S: Final = 2.0


def push_targets(settings: Settings) -> dict[str, list[PushTarget]]:
    """Configured collections by network name. Raises ConfigError when none is configured."""
    contracts = {c.name: c for c in settings.contracts}
    out: dict[str, list[PushTarget]] = {}
    for item in settings.pusher.collections:
        contract = contracts[item.contract]  # validated at load
        out.setdefault(contract.network, []).append(
            PushTarget(item.contract, contract.address.lower(), item.mode, item.uri_template)
        )
    if not out:
        raise ConfigError("pusher.collections", "no collection is configured for pushing")
    return out


def load_signer(settings: Settings) -> Signer:
    if settings.pusher.signer is None:
        raise ConfigError("pusher.signer", "set key_env or key_file")
    return Signer.from_settings(settings.pusher.signer)


class PusherRuntime:
    def __init__(self, settings: Settings, signer: Signer) -> None:
        self._settings = settings
        self._signer = signer
        self._targets = push_targets(settings)
        self.state = "starting"  # starting | standby | running | stopped
        self.chains: list[ChainPusher] = []
        self.intake: Intake | None = None

    async def run(self, stopping: asyncio.Event) -> None:
        """Lead (or wait as standby), then consume and push until ``stopping``.

        Raises on Postgres or Kafka failures, a lost leader lock, and bad configuration.
        """
        self.state = "standby"
        s = self._settings
        lock = LeaderLock(s.postgres.dsn, "pusher", s.pusher.leader_scope)
        if not await lock.acquire(stopping):
            self.state = "stopped"
            return
        pool = None
        producer: AsyncProducer | None = None
        consumer: AsyncConsumer | None = None
        clients: list[RpcClient] = []
        try:
            pool = await create_pool(s.postgres)
            outbox = Outbox(pool, sender=self._signer.address)
            topics = s.kafka.topics
            if s.kafka.create_topics:
                await ensure_topics(
                    s.kafka,
                    {topics.metadata_updates: s.kafka.partitions, topics.dead_letter: 1},
                    s.kafka.replication_factor,
                )
            for network_name, targets in self._targets.items():
                network = s.network(network_name)
                client = RpcClient(network.rpc_urls, timeout_s=network.request_timeout_s)
                clients.append(client)
                self.chains.append(
                    ChainPusher(
                        network=network,
                        settings=s.pusher,
                        targets=targets,
                        outbox=outbox,
                        chain=Chain(client),
                        signer=self._signer,
                    )
                )
            producer = AsyncProducer(s.kafka, client_id=f"{s.kafka.client_id}-pusher")
            await producer.start()
            intake = self.intake = Intake(
                outbox,
                {(c.chain_id, t.contract) for c in self.chains for t in c.targets},
            )
            consumer = AsyncConsumer(
                s.kafka, group_id=s.pusher.group, topics=[topics.metadata_updates]
            )
            await consumer.start()
            processor: StreamProcessor[dict[str, Any]] = StreamProcessor(
                consumer,
                decode=json_decoder(METADATA_UPDATE_V1),
                process=intake.handle,
                dlq=producer,
                dlq_topic=topics.dead_letter,
            )
            self.state = "running"
            metrics.daemon_ready.labels("pusher").set(1)
            log.info(
                "pusher running",
                sender=self._signer.address,
                networks=sorted(self._targets),
                collections=[t.name for ts in self._targets.values() for t in ts],
            )
            halt = asyncio.Event()
            await _until_first_failure(
                stopping,
                halt,
                [
                    processor.run(halt),
                    *(c.run(halt) for c in self.chains),
                    _export_gauges(outbox, halt),
                    _watch_lock(lock, halt),
                ],
            )
        finally:
            self.state = "stopped"
            metrics.daemon_ready.labels("pusher").set(0)
            if consumer is not None:
                await consumer.close()
            if producer is not None:
                await producer.close()
            for client in clients:
                await client.close()
            if pool is not None:
                await pool.close()
            await lock.release()


async def _until_first_failure(
    stopping: asyncio.Event, halt: asyncio.Event, jobs: Sequence[Awaitable[None]]
) -> None:
    """Run ``jobs`` (which stop on ``halt``) until ``stopping``; the first failure halts the
    others and is raised."""
    tasks = [asyncio.ensure_future(j) for j in jobs]
    stop_wait = asyncio.create_task(stopping.wait())
    try:
        done, _ = await asyncio.wait([*tasks, stop_wait], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stop_wait:
                task.result()
    finally:
        halt.set()
        stop_wait.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                log.error("pusher task failed", error=repr(result))


async def _export_gauges(outbox: Outbox, stopping: asyncio.Event) -> None:
    while not stopping.is_set():
        pending, oldest_s = await outbox.pending()
        metrics.pusher_pending_updates.set(pending)
        metrics.pusher_oldest_pending_seconds.set(oldest_s)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), GAUGES_EVERY_S)


async def _watch_lock(lock: LeaderLock, stopping: asyncio.Event) -> None:
    """Raise ServiceError as soon as the leader lock's connection is gone."""
    while not stopping.is_set():
        await lock.connection.fetchval("select 1")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), LOCK_CHECK_S)
