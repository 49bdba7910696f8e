"""``dnft pusher`` assembled: metadata updates from Kafka to on-chain announcements, each once.

The pipeline, as :meth:`PusherRuntime.run` wires it:

1. **lead**: ``LeaderLock("pusher", pusher.leader_scope)``; a standby waits here, holding
   nothing else open;
2. **intake**: consumer (group ``pusher.group`` on ``kafka.topics.metadata_updates``) -> typed
   decode (:class:`~dnft.messages.MetadataUpdate`; anything else goes to the dead-letter
   topic) -> :class:`~publisher.pusher.intake.Intake` records the batch's updates that match a
   version in ``token_versions`` (of a collection bound to the contract in ``collections``) in
   the outbox, refusing the others -> commit point (offsets move only once the outbox holds
   the batch);
3. **push**, beside the intake: one :class:`~publisher.pusher.sender.ChainPusher` per network
   turns the outbox into transactions, signed by that network's own key
   (``pusher.signers``, else ``pusher.signer``) through an Outbox scoped to that key's
   address (its nonces, rate cap and pushes); a gauge task exports pending updates and the
   oldest one's age; the lease's watch stops everything when leadership is lost, and every
   signature and broadcast is fenced by the lease first (:mod:`dnft.leader`).

``networks`` (``dnft pusher --network``) limits which chains this process pushes to; its
intake still records the updates of every announced collection (the outbox is shared, keyed
by chain), so an update is never refused for being another chain's. One leader per
``pusher.leader_scope``: separate pushers per chain need a scope each.

The first job to fail stops the others and is raised. Everything opened is owned by one
:class:`~dnft.resources.DaemonResources` and closed in reverse order, the leader lock last.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Mapping, Sequence
from typing import Final

import structlog

from dnft import metrics
from dnft.collection import BoundCollection, load_bound_collections
from dnft.config import NetworkSettings, Settings
from dnft.errors import ConfigError
from dnft.health import HealthServer
from dnft.kafka.security import check_files
from dnft.leader import LeaderLock
from dnft.messages import MetadataUpdate
from dnft.resources import DaemonResources
from dnft.rpc import RpcClient
from dnft.stream import StreamProcessor, message_decoder
from publisher.pusher.chain import Chain
from publisher.pusher.intake import Intake, trusted_bindings
from publisher.pusher.outbox import Outbox
from publisher.pusher.sender import ChainPusher, PushTarget
from publisher.pusher.signer import Signer
from publisher.pusher.targets import push_targets

log = structlog.get_logger("dnft.pusher")

GAUGES_EVERY_S: Final = 2.0


async def run_pusher(
    settings: Settings,
    signers: Signer | Mapping[str, Signer],
    stopping: asyncio.Event,
    health: HealthServer | None,
) -> None:
    """Lead (or wait as standby) and push until ``stopping``; ``health`` reports the pusher
    ready while it stands by or runs. ``signers``: network name -> its signer (the networks
    pushed to), or one signer for every announced network."""
    runtime = PusherRuntime(settings, signers)

    async def ready() -> str | None:
        return None if runtime.state in ("standby", "running") else runtime.state

    if health is not None:
        health.add_readiness_check("pusher", ready)
    await runtime.run(stopping)


class PusherRuntime:
    """The pusher of ``settings``, signing each network's pushes with its signer in
    ``signers`` (one Signer: the same for every announced network); only those networks are
    pushed to. ``state``: starting | standby | running | stopped; ``chains`` and ``intake``
    are set once it runs."""

    def __init__(self, settings: Settings, signers: Signer | Mapping[str, Signer]) -> None:
        self._settings = settings
        # A standby is ready before it opens Kafka: a missing TLS/SASL file fails it here.
        check_files(settings.kafka.security)
        self._targets = push_targets(settings)
        self._signers = _per_network(signers, self._targets)
        # The collections whose recorded versions the pusher may announce: read (small YAML
        # files) before anything runs, so a pusher that could trust nothing fails at start.
        self._bound: list[BoundCollection] = load_bound_collections(settings)
        trusted_bindings(self._targeted(), self._bound)
        self.state = "starting"
        self.chains: list[ChainPusher] = []
        self.intake: Intake | None = None

    async def run(self, stopping: asyncio.Event) -> None:
        """Lead (or wait as standby), then consume and push until ``stopping``.

        Raises on Postgres or Kafka failures, a lost leader lock, and bad configuration.
        """
        self.state = "standby"
        s = self._settings
        lock = LeaderLock(s.postgres, "pusher", s.pusher.leader_scope)
        if not await lock.acquire(stopping):
            self.state = "stopped"
            return
        async with DaemonResources(s, "pusher") as res:
            res.on_close(lock.release)  # registered first: released after everything else
            try:
                await self._lead(res, lock, stopping)
            finally:
                self.state = "stopped"

    async def _lead(self, res: DaemonResources, lock: LeaderLock, stopping: asyncio.Event) -> None:
        s = self._settings
        topics = s.kafka.topics
        pool = await res.pool()
        # One Outbox per network, scoped to its signer's address: nonces, the rate cap and
        # open pushes are per (chain, sender). Recording updates and the gauges are not
        # scoped by sender: any Outbox serves them.
        bindings = trusted_bindings(self._targeted(), self._bound)
        outbox = Outbox(pool, sender=next(iter(self._signers.values())).address)
        await res.topics({topics.metadata_updates: s.kafka.partitions, topics.dead_letter: 1})
        self.chains = [
            self._chain_pusher(
                res,
                s.network(network),
                self._targets[network],
                Outbox(pool, sender=signer.address, bindings=bindings),
                signer,
                lock,
            )
            for network, signer in self._signers.items()
        ]
        producer = await res.producer()  # the dead-letter topic's
        intake = self.intake = Intake(outbox, bindings)
        consumer = await res.consumer(s.pusher.group, [topics.metadata_updates])
        processor = StreamProcessor(
            consumer,
            decode=message_decoder(MetadataUpdate),
            process=intake.handle,
            dlq=producer,
            dlq_topic=topics.dead_letter,
        )
        self.state = "running"
        res.ready()
        for network, signer in self._signers.items():
            log.info(
                "pusher running",
                network=network,
                sender=signer.address,
                collections=[t.name for t in self._targets[network]],
            )
        halt = asyncio.Event()
        await _until_first_failure(
            stopping,
            halt,
            [
                processor.run(halt),
                *(c.run(halt) for c in self.chains),
                _export_gauges(outbox, halt),
                lock.watch(halt),
            ],
        )

    def _targeted(self) -> list[tuple[int, PushTarget]]:
        """Each push target with its network's chain id."""
        s = self._settings
        return [(s.network(n).chain_id, t) for n, ts in self._targets.items() for t in ts]

    def _chain_pusher(
        self,
        res: DaemonResources,
        network: NetworkSettings,
        targets: list[PushTarget],
        outbox: Outbox,
        signer: Signer,
        lock: LeaderLock,
    ) -> ChainPusher:
        client = RpcClient(network.rpc_urls, timeout_s=network.request_timeout_s)
        res.on_close(client.close)
        return ChainPusher(
            network=network,
            settings=self._settings.pusher,
            targets=targets,
            outbox=outbox,
            chain=Chain(client),
            signer=signer,
            fence=lock.check,
        )


def _per_network(
    signers: Signer | Mapping[str, Signer], targets: Mapping[str, list[PushTarget]]
) -> dict[str, Signer]:
    """Network -> signer for the networks pushed to. Raises ConfigError for a network with no
    announced collection."""
    if isinstance(signers, Signer):
        return dict.fromkeys(sorted(targets), signers)
    unknown = sorted(set(signers) - set(targets))
    if unknown or not signers:
        raise ConfigError(
            "pusher.collections",
            f"no collection announced on network(s) {unknown} (announced: {sorted(targets)})",
        )
    return dict(signers)


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
