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
:func:`run_audit`): ``regenerator.version_audit`` (a token state stored as two versions,
version numbers that are not 1..n) and ``publisher.pusher.transaction_audit`` (pusher
transactions mined on chain that the outbox does not know, pushes mined twice, confirmed
pushes the chain does not have).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

import asyncpg
import orjson
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError as _KafkaLibError

from dnft.db import redact_dsn
from dnft.errors import ConfigError, KafkaError, ServiceError
from dnft.settings import KafkaSettings, NetworkSettings, Settings
from indexer.checkpoint import Checkpoint, CheckpointStore
from indexer.encode import ChunkEncoder
from indexer.progress import ProgressBar
from indexer.publish import event_id, token_id_of
from indexer.rpc.client import RpcClient
from indexer.rpc.logs import iter_logs
from schemas import CHAIN_EVENT_V1, CHAIN_RETRACTION_V1

if TYPE_CHECKING:
    from publisher.pusher.transaction_audit import TransactionAudit
    from regenerator.version_audit import VersionAudit

# tansu's ListOffsets under-reports partition ends (measured: 2,735 of 3,000 records, and
# still so a second later), so "read up to the end offsets" stops early. The reader goes on
# until no record arrived for this long after reaching them.
DEFAULT_QUIET_S = 2.0
# A topic someone keeps writing to never goes quiet: past the end offsets the reader stops
# after this long anyway, and says so.
DEFAULT_MAX_TAIL_S = 30.0


class AuditRangeError(ConfigError):
    """The block range cannot be audited as asked (empty, or above the chain head)."""


@dataclass(frozen=True, slots=True)
class EventRef:
    """One event as a source holds it. ``tx_hash`` is None where the source does not store
    it (``regen_events``)."""

    event_id: str
    block_number: int
    log_index: int
    tx_hash: str | None = None
    contract: str | None = None
    token_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "block_number": self.block_number,
            "log_index": self.log_index,
            "tx_hash": self.tx_hash,
        }


@dataclass(frozen=True, slots=True)
class Duplicate:
    """One on-chain log (tx hash, log index) present under several event ids."""

    tx_hash: str
    log_index: int
    events: tuple[EventRef, ...]
    on_chain: str | None  # the member the chain has now, if any

    def as_dict(self) -> dict[str, Any]:
        return {
            "tx_hash": self.tx_hash,
            "log_index": self.log_index,
            "events": [e.as_dict() for e in self.events],
            "on_chain": self.on_chain,
        }


@dataclass(slots=True)
class SourceReport:
    """How one source compares with the chain. Lists are sorted by block, then event id."""

    source: str
    expected: int
    present: int
    missing: list[EventRef] = field(default_factory=list)
    extra: list[EventRef] = field(default_factory=list)
    duplicated: list[Duplicate] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.missing or self.extra or self.duplicated)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "clean": self.clean,
            "expected": self.expected,
            "present": self.present,
            "missing": [e.as_dict() for e in self.missing],
            "extra": [e.as_dict() for e in self.extra],
            "duplicated": [d.as_dict() for d in self.duplicated],
        }


def _order(ref: EventRef) -> tuple[int, int, str]:
    return (ref.block_number, ref.log_index, ref.event_id)


def reconcile(
    source: str,
    expected: Mapping[str, EventRef],
    present: Mapping[str, EventRef],
    tx_hashes: Mapping[str, str] | None = None,
) -> SourceReport:
    """Compare a source's events (``present``) with the chain's (``expected``), by event id.

    Present events that share a tx hash and log index form a duplicate; ``tx_hashes``
    (event id -> tx hash) fills in the hash for events whose source does not carry it, and
    an event whose hash stays unknown cannot be grouped (it can still be extra). Members of
    a duplicate are not listed again as extra. Pure.
    """
    lookup = tx_hashes or {}
    groups: defaultdict[tuple[str, int], list[EventRef]] = defaultdict(list)
    for ref in present.values():
        tx = ref.tx_hash or lookup.get(ref.event_id) or _tx_of(expected.get(ref.event_id))
        if tx is not None:
            groups[(tx, ref.log_index)].append(ref)
    duplicated = [
        Duplicate(
            tx,
            index,
            tuple(sorted(refs, key=_order)),
            next((r.event_id for r in refs if r.event_id in expected), None),
        )
        for (tx, index), refs in groups.items()
        if len(refs) > 1
    ]
    duplicated.sort(key=lambda d: _order(d.events[0]))
    in_duplicates = {e.event_id for d in duplicated for e in d.events}
    missing = [ref for eid, ref in expected.items() if eid not in present]
    extra = [
        ref for eid, ref in present.items() if eid not in expected and eid not in in_duplicates
    ]
    return SourceReport(
        source=source,
        expected=len(expected),
        present=len(present),
        missing=sorted(missing, key=_order),
        extra=sorted(extra, key=_order),
        duplicated=duplicated,
    )


def _tx_of(ref: EventRef | None) -> str | None:
    return None if ref is None else ref.tx_hash


@dataclass(slots=True)
class StreamState:
    """What a consumer of the chain-events topic ends with, and how it got there."""

    net: dict[str, EventRef] = field(default_factory=dict)
    events: int = 0
    retractions: int = 0
    # An event id delivered again while still live: at-least-once, harmless.
    repeats: int = 0
    # A retraction of an id not live at that point (its event was outside what was read).
    unmatched_retractions: int = 0
    # Every event id's tx hash, retracted ones included (regen_events does not store it).
    tx_hashes: dict[str, str] = field(default_factory=dict)


def net_events(messages: Iterable[Mapping[str, Any]]) -> StreamState:
    """Apply chain events and retractions in order (one partition's order is enough: an
    event and its retraction share a key). Pure."""
    state = StreamState()
    for m in messages:
        eid = str(m["event_id"])
        if m.get("removed"):
            state.retractions += 1
            if state.net.pop(eid, None) is None:
                state.unmatched_retractions += 1
            continue
        state.events += 1
        if eid in state.net:
            state.repeats += 1
        tx = m.get("tx_hash")
        ref = EventRef(
            event_id=eid,
            block_number=int(m["block_number"]),
            log_index=int(m["log_index"]),
            tx_hash=str(tx).lower() if tx else None,
            contract=m.get("contract"),
            token_id=m.get("token_id"),
        )
        state.net[eid] = ref
        if ref.tx_hash is not None:
            state.tx_hashes[eid] = ref.tx_hash
    return state


def stored_by_planner(
    events: Mapping[str, EventRef], bound_contracts: Iterable[str]
) -> dict[str, EventRef]:
    """The events the regenerator's planner stores: those of a bound contract that name a
    token (``regenerator.planner.Planner._store``). Pure."""
    bound = {c.lower() for c in bound_contracts}
    return {
        eid: ref
        for eid, ref in events.items()
        if ref.token_id is not None and (ref.contract or "").lower() in bound
    }


# --- readers ---------------------------------------------------------------------------


@dataclass(slots=True)
class ChainRead:
    head: int
    events: dict[str, EventRef]
    undecodable: int = 0


async def read_chain(
    settings: Settings,
    network: str,
    from_block: int,
    to_block: int,
    *,
    progress_stream: TextIO | None = None,
) -> ChainRead:
    """The canonical events of the network's configured contracts in the range, decoded as
    the indexer decodes them.

    Raises AuditRangeError for an empty range or one above the chain head, ConfigError for a
    network without contracts, and the RPC error after the client's own retries.
    """
    net = settings.network(network)
    encoder = ChunkEncoder.from_settings(settings, network)
    if not encoder.contracts:
        raise ConfigError("contracts", f"no contract is configured on network {network!r}")
    if from_block < 0 or to_block < from_block:
        raise AuditRangeError("--from-block", f"empty block range {from_block}..{to_block}")
    addresses, topics = encoder.log_filter()
    async with _rpc_client(net) as client:
        head = int(await client.call("eth_blockNumber", []), 16)
        if to_block > head:
            raise AuditRangeError(
                "--to-block",
                f"block {to_block} is above the chain head of network {network!r} ({head});"
                f" audit up to {head} at most",
            )
        out = ChainRead(head=head, events={})
        progress = ProgressBar(f"{network} chain", from_block, to_block, progress_stream)
        chunks = iter_logs(
            client,
            addresses,
            topics,
            from_block,
            to_block,
            max_range=net.max_block_range,
            in_flight=net.max_in_flight,
        )
        try:
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    encoded = encoder.encode(chunk, keep_events=True)
                    out.undecodable += encoded.undecodable
                    for e in encoded.events:
                        eid = event_id(net.chain_id, e.block_hash, e.log_index)
                        out.events[eid] = EventRef(
                            event_id=eid,
                            block_number=e.block_number,
                            log_index=e.log_index,
                            tx_hash=e.tx_hash.lower(),
                            contract=e.address.lower(),
                            token_id=token_id_of(e.args),
                        )
                    progress.update(chunk.to_block, len(encoded.events))
        finally:
            progress.close()
    return out


def _rpc_client(net: NetworkSettings) -> RpcClient:
    return RpcClient(
        net.rpc_urls, timeout_s=net.request_timeout_s, max_in_flight=net.max_in_flight * 2
    )


@dataclass(slots=True)
class TopicRead:
    """The kept records of a topic, in partition order, and what reading it took."""

    records: int = 0  # every record read, kept or not
    end_offsets: int = 0  # the sum the broker reported at the start
    unparseable: int = 0
    kept: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False  # records still arrived after max_tail_s past the ends
    seconds: float = 0.0


def read_topic(
    kafka: KafkaSettings,
    topic: str,
    keep: Callable[[dict[str, Any]], bool],
    *,
    quiet_s: float = DEFAULT_QUIET_S,
    max_tail_s: float = DEFAULT_MAX_TAIL_S,
    metadata_timeout_s: float = 10.0,
    progress_stream: TextIO | None = None,
) -> TopicRead:
    """Read ``topic`` from the beginning without a consumer group (nothing is committed),
    keeping the JSON records ``keep`` accepts, in partition order. Blocks: run it in a
    thread.

    Stops once every partition reached the end offsets reported at the start AND no record
    arrived for ``quiet_s`` (or ``max_tail_s`` after the ends, for a topic still written).
    Raises KafkaError when the broker cannot be reached or the topic does not exist.
    """
    started = time.monotonic()
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=list(kafka.bootstrap_servers),
            client_id=f"{kafka.client_id}-audit",
            group_id=None,
            enable_auto_commit=False,
            bootstrap_timeout_ms=int(metadata_timeout_s * 1000),
        )
    except _KafkaLibError as exc:
        raise KafkaError(f"cannot reach Kafka at {kafka.bootstrap_servers}: {exc!r}") from exc
    out = TopicRead()
    try:
        partitions: set[int] = set()
        deadline = started + metadata_timeout_s
        while not partitions and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic) or set()
            if not partitions:
                time.sleep(0.2)
        if not partitions:
            raise KafkaError(f"topic {topic!r} does not exist on {kafka.bootstrap_servers}")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends: dict[TopicPartition, int] = consumer.end_offsets(tps)
        out.end_offsets = sum(ends.values())
        by_partition: dict[int, list[dict[str, Any]]] = {p: [] for p in sorted(partitions)}
        progress = ProgressBar(
            f"kafka {topic}", 0, max(0, out.end_offsets - 1), progress_stream, unit="record"
        )
        last_record = time.monotonic()
        reached_at: float | None = None
        try:
            while True:
                for tp, records in consumer.poll(timeout_ms=200).items():
                    last_record = time.monotonic()
                    kept = 0
                    for r in records:
                        out.records += 1
                        try:
                            body = orjson.loads(r.value)
                        except orjson.JSONDecodeError:
                            out.unparseable += 1
                            continue
                        if isinstance(body, dict) and keep(body):
                            by_partition[tp.partition].append(body)
                            kept += 1
                    progress.update(out.records - 1, kept)
                now = time.monotonic()
                if reached_at is None:
                    if all(consumer.position(tp) >= ends[tp] for tp in tps):
                        reached_at = now
                    continue
                if now - last_record >= quiet_s:
                    break
                if now - reached_at >= max_tail_s:
                    out.stopped_early = True
                    break
        finally:
            progress.close()
        for p in sorted(by_partition):
            out.kept.extend(by_partition[p])
    except _KafkaLibError as exc:
        raise KafkaError(f"reading {topic!r} failed: {exc!r}") from exc
    finally:
        consumer.close()
    out.seconds = time.monotonic() - started
    return out


def chain_event_filter(
    chain_id: int, contracts: Iterable[str], from_block: int, to_block: int
) -> Callable[[dict[str, Any]], bool]:
    """Accepts chain events and retractions of this chain's ``contracts`` in the range."""
    addresses = {c.lower() for c in contracts}

    def keep(body: dict[str, Any]) -> bool:
        try:
            return (
                body.get("schema") in (CHAIN_EVENT_V1, CHAIN_RETRACTION_V1)
                and body.get("chain_id") == chain_id
                and str(body.get("contract", "")).lower() in addresses
                and from_block <= int(body["block_number"]) <= to_block
            )
        except (KeyError, TypeError, ValueError):
            return False

    return keep


async def read_regen_events(
    conn: asyncpg.Connection,
    collections: Sequence[str],
    chain_id: int,
    from_block: int,
    to_block: int,
) -> dict[str, EventRef]:
    """The events the planner stored for ``collections`` in the range, by event id."""
    rows = await conn.fetch(
        "select event_id, block_number, log_index, token_id from regen_events "
        "where collection = any($1::text[]) and block_number between $2 and $3 "
        "and event_id like $4",
        list(collections),
        from_block,
        to_block,
        f"{chain_id}:%",
    )
    return {
        r["event_id"]: EventRef(
            event_id=r["event_id"],
            block_number=r["block_number"],
            log_index=r["log_index"],
            token_id=str(r["token_id"]),
        )
        for r in rows
    }


# --- the whole audit -------------------------------------------------------------------


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


def bound_contracts(settings: Settings, network: str) -> dict[str, str]:
    """Collection name -> contract address, for collections bound to the network's contracts.

    Raises ConfigError for a collection file that cannot be loaded.
    """
    if not settings.collections:
        return {}
    from regenerator.runtime import load_bound_collections

    chain_id = settings.network(network).chain_id
    ours = {c.address.lower() for c in settings.contracts_on(network)}
    return {
        b.collection.name: b.contract
        for b in load_bound_collections(settings)
        if b.chain_id == chain_id and b.contract in ours
    }


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
    # Imported here: the indexer package does not load the pusher's or regenerator's code.
    from publisher.pusher.transaction_audit import audit_transactions
    from regenerator.version_audit import audit_versions

    net = settings.network(network)
    collections = bound_contracts(settings, network)
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
            expected = stored_by_planner(chain.events, collections.values())
            postgres = reconcile("postgres", expected, stored, lookup)
            versions = await audit_versions(conn, sorted(collections))
        async with _rpc_client(net) as client:
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


__all__ = [
    "DEFAULT_QUIET_S",
    "AuditRangeError",
    "AuditReport",
    "Duplicate",
    "EventRef",
    "SourceReport",
    "StreamState",
    "chain_event_filter",
    "net_events",
    "read_chain",
    "read_regen_events",
    "read_topic",
    "reconcile",
    "run_audit",
    "stored_by_planner",
]
