"""The indexer in tests: its configuration for a deployed collection and an in-process run of
it (``tests.support.chain`` compares what it published with the chain)."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from dnft.config import Settings
from dnft.kafka import AsyncProducer
from indexer import NetworkIndexer
from tests.support.chain import COLLECTION_ABI, Deployed, World
from tests.support.kafka import QUICK_CONSUMER
from tests.support.wait import wait_until


def indexer_config(
    chain: Deployed,
    *,
    bootstrap: str,
    dsn: str,
    topic: str,
    http_port: int = 0,
    **network: Any,
) -> dict[str, Any]:
    """A dnft.yaml (as a mapping) indexing ``chain``'s collection on network ``local`` into
    ``topic``; ``network`` overrides the network's keys (``rpc_urls``, ``ws_url``, ...)."""
    net: dict[str, Any] = {
        "name": "local",
        "chain_id": chain.chain_id,
        "rpc_urls": [chain.rpc_url],
        "ws_url": None,
        "confirmations": {"depth": 2},
        "poll_interval_s": 0.2,
        "max_block_range": 50,
        "request_timeout_s": 5,
    }
    net.update(network)
    return {
        "http": {"port": http_port},
        "networks": [net],
        "contracts": [
            {
                "name": "collection",
                "network": "local",
                "address": chain.address,
                "abi": COLLECTION_ABI,
                "start_block": 0,
            }
        ],
        "kafka": {
            "bootstrap_servers": [bootstrap],
            "topics": {"chain_events": topic},
            "partitions": 3,
            "consumer": dict(QUICK_CONSUMER),
        },
        "postgres": {"dsn": dsn},
    }


class IndexerConfigFor(Protocol):
    """The ``indexer_config_for`` fixture: :func:`indexer_config` with the test's broker,
    database and topic filled in."""

    def __call__(self, chain: Deployed, **network: Any) -> dict[str, Any]: ...


class RunningIndexer:
    """``async with RunningIndexer(settings) as indexer:`` network ``local`` indexed by an
    in-process task (with a producer of its own unless one is given); leaving the block is
    the daemon's clean stop (``stop_timeout_s`` at most)."""

    def __init__(
        self,
        settings: Settings,
        *,
        producer: AsyncProducer | None = None,
        stop_timeout_s: float = 15,
    ) -> None:
        self.settings = settings
        self._own_producer = producer is None
        self.producer = producer or AsyncProducer(settings.kafka)
        self.stop_timeout_s = stop_timeout_s
        self.stopping = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> NetworkIndexer:
        if self._own_producer:
            await self.producer.start()
        indexer = NetworkIndexer(self.settings, "local", self.producer)
        self.task = asyncio.create_task(indexer.run(self.stopping))
        return indexer

    async def __aexit__(self, *exc: object) -> None:
        self.stopping.set()
        assert self.task is not None
        try:
            await asyncio.wait_for(self.task, self.stop_timeout_s)
        finally:
            if self._own_producer:
                await self.producer.close()


async def caught_up(indexer: NetworkIndexer, world: World, timeout_s: float = 30) -> int:
    """Wait until ``indexer`` has indexed the chain's current head; returns that head."""
    head = await world.block_number()
    await wait_until(lambda: indexer.indexed_block >= head, timeout_s, f"indexing to {head}")
    return head


async def index_to_head(settings: Settings, world: World) -> int:
    """Run an indexer until it has indexed the chain's current head, then stop it; returns
    that head."""
    async with RunningIndexer(settings) as indexer:
        return await caught_up(indexer, world)
