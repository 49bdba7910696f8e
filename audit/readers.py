"""The audit's three readers: the chain (read and decoded exactly as the indexer does, through
``indexer.read_range``), a Kafka topic from the beginning without a consumer group, and the
regenerator's stored events. Reads only."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import asyncpg
import orjson
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError as _KafkaLibError

from audit.events import EventRef
from dnft.config import KafkaSettings, NetworkSettings, Settings
from dnft.errors import ConfigError, KafkaError
from dnft.kafka import client_security_kwargs
from dnft.progress import ProgressBar
from dnft.rpc import RpcClient
from indexer import ChunkEncoder, part_of, read_range
from schemas import CHAIN_EVENT_V1, CHAIN_RETRACTION_V1

# tansu's ListOffsets under-reports partition ends (measured: 2,735 of 3,000 records, and
# still so a second later), so "read up to the end offsets" stops early. The reader goes on
# until no record arrived for this long after reaching them.
DEFAULT_QUIET_S = 2.0

# A topic someone keeps writing to never goes quiet: past the end offsets the reader stops
# after this long anyway, and says so.
DEFAULT_MAX_TAIL_S = 30.0


class AuditRangeError(ConfigError):
    """The block range cannot be audited as asked (empty, or above the chain head)."""


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
    async with chain_client(net) as client:
        head = int(await client.call("eth_blockNumber", []), 16)
        if to_block > head:
            raise AuditRangeError(
                "--to-block",
                f"block {to_block} is above the chain head of network {network!r} ({head});"
                f" audit up to {head} at most",
            )
        out = ChainRead(head=head, events={})
        progress = ProgressBar(f"{network} chain", from_block, to_block, progress_stream)
        chunks = read_range(client, encoder, net, from_block, to_block)
        try:
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    encoded = chunk.encode(keep_events=True)
                    out.undecodable += encoded.undecodable
                    for e in encoded.events:  # a batch's parts each (indexer.fanout)
                        eid = encoder.publisher.event_id(e)
                        out.events[eid] = EventRef(
                            event_id=eid,
                            block_number=e.block_number,
                            log_index=e.log_index,
                            tx_hash=e.tx_hash.lower(),
                            contract=e.address.lower(),
                            token_id=encoder.publisher.token_id(e),
                            event=e.name,
                            part=e.part,
                        )
                    progress.update(chunk.to_block, len(encoded.events))
        finally:
            progress.close()
    return out


def chain_client(net: NetworkSettings) -> RpcClient:
    """An RPC client for the audit's reads of ``net`` (its URLs, timeout and in-flight cap)."""
    return RpcClient(
        net.rpc_urls,
        timeout_s=net.request_timeout_s,
        max_in_flight=net.max_in_flight * 2,
        max_response_bytes=net.max_response_bytes,
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
            **client_security_kwargs(kafka),
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
            part=part_of(r["event_id"]),
        )
        for r in rows
    }
