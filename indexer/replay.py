"""Replay a block range: re-read the chain and publish its events again, with the same ids.

For an operator who suspects events were lost downstream (a topic recreated, a consumer bug).
Every event keeps its deterministic id (``chainId:blockHash:logIndex``), so consumers that
already applied it drop the repeat: downstream a replay is a no-op unless state really differs.

Only final blocks are replayed by default: an event of a block that is later reorged away
would be published without the indexer knowing it must retract it. The indexer's checkpoint
is neither read nor moved.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from dnft.config import Settings
from dnft.errors import ConfigError, DnftError
from dnft.kafka import AsyncProducer, OutgoingMessage, PendingBatch
from dnft.progress import ProgressBar
from dnft.rpc import PrometheusRpcObserver, RpcClient
from indexer.backfill import PIPELINE_DEPTH
from indexer.encode import ChunkEncoder
from indexer.sync import finalized_block, read_range


class ReplayRangeError(DnftError, ValueError):
    """The requested range cannot be replayed as asked (past the head, not final, empty)."""


@dataclass(slots=True)
class ReplayReport:
    network: str
    from_block: int
    to_block: int
    events: int = 0
    by_contract: dict[str, int] = field(default_factory=dict)
    undecodable: int = 0
    published: bool = False


def select_encoder(settings: Settings, network: str, contracts: Sequence[str]) -> ChunkEncoder:
    """The network's encoder, limited to ``contracts`` (names or addresses) when given."""
    encoder = ChunkEncoder.from_settings(settings, network)
    if not contracts:
        return encoder
    wanted = {c.lower() for c in contracts}
    chosen = {
        address: c
        for address, c in encoder.contracts.items()
        if address in wanted or c.settings.name.lower() in wanted
    }
    known = {c.settings.name.lower() for c in encoder.contracts.values()} | set(encoder.contracts)
    unknown = sorted(wanted - known)
    if unknown:
        names = sorted(c.settings.name for c in encoder.contracts.values())
        raise ConfigError(
            "--contract", f"{unknown} not configured on network {network!r}; configured: {names}"
        )
    return ChunkEncoder(chosen, encoder.publisher)


async def replay_range(
    settings: Settings,
    network: str,
    from_block: int,
    to_block: int,
    *,
    producer: AsyncProducer | None,
    contracts: Sequence[str] = (),
    allow_unfinalized: bool = False,
) -> ReplayReport:
    """Fetch, decode and (with a producer) publish every configured event in the range.

    Without a producer it is a dry run: it reads and counts. Returns once Kafka acknowledged
    everything published. Raises ReplayRangeError for a range past the head or (unless
    ``allow_unfinalized``) past the final block, ConfigError for unknown contracts, and the
    RPC or Kafka error after the clients' own retries.
    """
    net = settings.network(network)
    encoder = select_encoder(settings, network, contracts)
    if from_block < 0 or to_block < from_block:
        raise ReplayRangeError(f"empty block range {from_block}..{to_block}")
    client = RpcClient(
        net.rpc_urls,
        timeout_s=net.request_timeout_s,
        max_in_flight=net.max_in_flight * 2,
        max_response_bytes=net.max_response_bytes,
        observer=PrometheusRpcObserver(network),
    )
    report = ReplayReport(network, from_block, to_block, published=producer is not None)
    try:
        head = int(await client.call("eth_blockNumber", []), 16)
        if to_block > head:
            raise ReplayRangeError(f"--to-block {to_block} is past the chain head {head}")
        final = await finalized_block(client, net, head)
        if to_block > final and not allow_unfinalized:
            raise ReplayRangeError(
                f"--to-block {to_block} is not final yet (final: {final}, head: {head}); "
                "replaying unfinalized blocks could publish events a reorg then orphans "
                "without a retraction: wait, or pass --allow-unfinalized"
            )
        progress = ProgressBar(f"{network} replay", from_block, to_block)
        pending: list[PendingBatch] = []
        chunks = read_range(client, encoder, net, from_block, to_block)
        try:
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    encoded = chunk.encode(final_block=final)  # says which are final
                    report.events += len(encoded.messages)
                    report.undecodable += encoded.undecodable
                    for name, count in encoded.counts.items():
                        report.by_contract[name] = report.by_contract.get(name, 0) + count
                    if producer is not None and encoded.messages:
                        messages: list[OutgoingMessage] = [
                            encoder.publisher.outgoing(m) for m in encoded.messages
                        ]
                        pending.append(await producer.enqueue(messages))
                        # Acknowledgements of at most PIPELINE_DEPTH chunks outstanding, as
                        # in the indexer's backfill.
                        while len(pending) > PIPELINE_DEPTH:
                            await pending.pop(0).acked()
                    progress.update(chunk.to_block, len(encoded.messages))
            for batch in pending:
                await batch.acked()
        finally:
            progress.close()
    finally:
        await client.close()
    return report
