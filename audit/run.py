"""Reconcile one network's chain logs with Kafka and Postgres over a block range, and check
that the two side effects that must never repeat did not: token versions and the pusher's
on-chain transactions.

Three readers give the event ids (``chainId:blockHash:logIndex``) each source holds for the
network's configured contracts:

* the chain: canonical logs read and decoded exactly as the indexer does (``iter_logs`` +
  ``ChunkEncoder``);
* Kafka: the chain-events topic read from the beginning, retractions applied in partition
  order (what every consumer ends with);
* Postgres: the regenerator's ``regen_events`` for the collections bound to those contracts.

:func:`reconcile` (pure) then says, per source, what is missing (on chain, not in the
source), extra (in the source, not on chain: e.g. an orphaned block's event never retracted)
and duplicated (one on-chain log, same tx hash and log index, present under two event ids).
An event id published twice without a retraction in between is an at-least-once repeat
(a crash between publish and checkpoint): counted, never a failure, since consumers dedupe
by event id.

Two more checks look for repeated side effects (modules of their own, called from
:func:`run_audit`): ``audit.versions`` (a token state stored as two versions,
version numbers that are not 1..n) and ``audit.transactions`` (pusher
transactions mined on chain that the outbox does not know, pushes mined twice, confirmed
pushes the chain does not have).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

import asyncpg

from audit.events import SourceReport, StreamState, net_events, reconcile, stored_by_planner
from audit.readers import (
    DEFAULT_MAX_TAIL_S,
    DEFAULT_QUIET_S,
    TopicRead,
    chain_client,
    chain_event_filter,
    read_chain,
    read_regen_events,
    read_topic,
)
from audit.transactions import TransactionAudit, audit_transactions
from audit.versions import VersionAudit, audit_versions
from dnft.collection import BoundCollection, load_bound_collections
from dnft.config import Settings
from dnft.db import redact_dsn
from dnft.errors import ServiceError
from indexer import Checkpoint, CheckpointStore


@dataclass(slots=True)
class AuditReport:
    network: str
    chain_id: int
    from_block: int
    to_block: int
    head: int
    chain_events: int
    chain_undecodable: int
    topic: str
    topic_read: TopicRead
    stream: StreamState
    kafka: SourceReport
    postgres: SourceReport | None
    checkpoint: Checkpoint | None
    # None: not audited (versions: no collection bound to the network's contracts).
    versions: VersionAudit | None = None
    transactions: TransactionAudit | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return all(
            part is None or part.clean
            for part in (self.kafka, self.postgres, self.versions, self.transactions)
        )

    def as_dict(self) -> dict[str, Any]:
        read = self.topic_read
        return {
            "network": self.network,
            "chain_id": self.chain_id,
            "from_block": self.from_block,
            "to_block": self.to_block,
            "head": self.head,
            "clean": self.clean,
            "chain": {"events": self.chain_events, "undecodable": self.chain_undecodable},
            "kafka": {
                **self.kafka.as_dict(),
                "topic": self.topic,
                "records_read": read.records,
                "end_offsets_reported": read.end_offsets,
                "unparseable": read.unparseable,
                "stopped_early": read.stopped_early,
                "events": self.stream.events,
                "retractions": self.stream.retractions,
                "repeats": self.stream.repeats,
                "unmatched_retractions": self.stream.unmatched_retractions,
            },
            "postgres": None if self.postgres is None else self.postgres.as_dict(),
            "versions": None if self.versions is None else self.versions.as_dict(),
            "transactions": None if self.transactions is None else self.transactions.as_dict(),
            "indexer_checkpoint": (
                None if self.checkpoint is None else self.checkpoint.block_number
            ),
            "notes": list(self.notes),
        }


def bound_collections(settings: Settings, network: str) -> list[BoundCollection]:
    """The collections bound to the network's contracts. Raises ConfigError for a collection
    file that cannot be loaded."""
    if not settings.collections:
        return []
    chain_id = settings.network(network).chain_id
    ours = {c.address.lower() for c in settings.contracts_on(network)}
    return [
        b for b in load_bound_collections(settings) if b.chain_id == chain_id and b.contract in ours
    ]


def bound_contracts(settings: Settings, network: str) -> dict[str, str]:
    """Collection name -> contract address, for collections bound to the network's contracts."""
    return {b.collection.name: b.contract for b in bound_collections(settings, network)}


def events_read(bound: Iterable[BoundCollection]) -> dict[str, set[str]]:
    """Contract address -> the events its collections' rules read."""
    out: dict[str, set[str]] = defaultdict(set)
    for b in bound:
        out[b.contract].update(b.collection.read_events)
    return dict(out)


async def run_audit(
    settings: Settings,
    network: str,
    from_block: int,
    to_block: int,
    *,
    quiet_s: float = DEFAULT_QUIET_S,
    max_tail_s: float = DEFAULT_MAX_TAIL_S,
    progress_stream: TextIO | None = None,
) -> AuditReport:
    """Read the three sources and reconcile them, then audit token versions (bound
    collections) and the pusher's transactions (the range, the configured contracts). Reads
    only; commits nothing anywhere.

    Raises AuditRangeError / ConfigError for a bad range or configuration, ServiceError
    (RpcError, KafkaError included) when a source cannot be read.
    """
    net = settings.network(network)
    bound = bound_collections(settings, network)
    collections = {b.collection.name: b.contract for b in bound}
    chain = await read_chain(
        settings, network, from_block, to_block, progress_stream=progress_stream
    )
    topic = settings.kafka.topics.chain_events
    keep = chain_event_filter(
        net.chain_id, [c.address for c in settings.contracts_on(network)], from_block, to_block
    )
    read = await asyncio.to_thread(
        read_topic,
        settings.kafka,
        topic,
        keep,
        quiet_s=quiet_s,
        max_tail_s=max_tail_s,
        progress_stream=progress_stream,
    )
    stream = net_events(read.kept)
    kafka = reconcile("kafka", chain.events, stream.net)
    try:
        conn = await asyncpg.connect(settings.postgres.dsn, timeout=10)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise ServiceError(
            f"cannot connect to Postgres at {redact_dsn(settings.postgres.dsn)}: {exc}"
        ) from exc
    try:
        checkpoint = await _checkpoint(conn, network)
        postgres: SourceReport | None = None
        versions: VersionAudit | None = None
        if collections:
            try:
                stored = await read_regen_events(
                    conn, sorted(collections), net.chain_id, from_block, to_block
                )
            except asyncpg.UndefinedTableError as exc:
                raise ServiceError(f"{exc}: run `dnft migrate` first") from exc
            # regen_events does not store tx hashes: every message ever published has one.
            lookup = {**stream.tx_hashes}
            expected = stored_by_planner(chain.events, events_read(bound))
            postgres = reconcile("postgres", expected, stored, lookup)
            versions = await audit_versions(conn, sorted(collections))
        async with chain_client(net) as client:
            transactions = await audit_transactions(
                client,
                conn,
                net.chain_id,
                [c.address for c in settings.contracts_on(network)],
                from_block,
                to_block,
                max_range=net.max_block_range,
                in_flight=net.max_in_flight,
            )
    finally:
        await conn.close()
    report = AuditReport(
        network=network,
        chain_id=net.chain_id,
        from_block=from_block,
        to_block=to_block,
        head=chain.head,
        chain_events=len(chain.events),
        chain_undecodable=chain.undecodable,
        topic=topic,
        topic_read=read,
        stream=stream,
        kafka=kafka,
        postgres=postgres,
        checkpoint=checkpoint,
        versions=versions,
        transactions=transactions,
    )
    if not collections:
        report.notes.append(
            "postgres and versions not audited: no collection is bound to this network's contracts"
        )
    report.notes.extend(transactions.notes)
    if checkpoint is None:
        report.notes.append(f"the indexer has no checkpoint for network {network!r} yet")
    elif checkpoint.block_number < to_block:
        report.notes.append(
            f"the indexer's checkpoint is at block {checkpoint.block_number}: events above it"
            " may not be published yet"
        )
    if read.stopped_early:
        report.notes.append(
            f"kafka: records still arrived {max_tail_s:g} s after the end offsets; stopped there"
        )
    if chain.undecodable:
        report.notes.append(
            f"chain: {chain.undecodable} log(s) carry a configured event's topic but do not"
            " decode (the indexer skips them too)"
        )
    return report


async def _checkpoint(conn: asyncpg.Connection, network: str) -> Checkpoint | None:
    try:
        return await CheckpointStore(conn, network).load()
    except asyncpg.UndefinedTableError:
        return None  # migrations not applied: reported as "no checkpoint"
