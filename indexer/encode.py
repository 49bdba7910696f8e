"""Raw logs -> Kafka messages for one network: decode, filter by contract, serialise.

Pure CPU, built from picklable settings, so a backfill can run it in a worker process while
the daemon's own process produces (kafka-python holds the GIL for most of its work), and
realtime can run it inline.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import structlog

from dnft.config import ContractSettings, Settings, TokenSource
from dnft.errors import ConfigError, DecodeError
from dnft.rpc import RawLog
from indexer.bounds import ValueLimits
from indexer.decode import DecodedEvent, EventDecoder
from indexer.fanout import fan_out
from indexer.publish import EventPublisher

# Undecodable logs reported per chunk, in full; the rest are only counted.
_MAX_REPORTED = 5


@dataclass(frozen=True, slots=True)
class Contract:
    settings: ContractSettings
    decoder: EventDecoder
    # Event name -> where its token id comes from (None: no single token).
    token_args: Mapping[str, TokenSource | None] = field(default_factory=dict)


@dataclass(slots=True)
class Encoded:
    """A chunk's messages as (key, value, event id), plus what the metrics and logs need."""

    messages: list[tuple[bytes, bytes, bytes]] = field(default_factory=list)
    # Only with keep_events: one per message (a batch's parts, indexer.fanout, each once).
    events: list[DecodedEvent] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # published, per contract name
    undecodable: int = 0
    reasons: list[str] = field(default_factory=list)
    cuts: dict[str, int] = field(default_factory=dict)  # values cut to size, per event name


def load_contracts(settings: Settings, network: str) -> dict[str, Contract]:
    """address (lowercase) -> decoder; raises ConfigError naming the contract on a bad ABI.

    Decoders cut long values to the network's ``max_value_bytes`` / ``max_array_items``, and
    batches (``indexer.fanout``) to ``max_batch_parts`` parts."""
    net = settings.network(network)
    limits = ValueLimits(net.max_value_bytes, net.max_array_items, net.max_batch_parts)
    out: dict[str, Contract] = {}
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
            decoder = EventDecoder.from_abi(abi, contract.include_events, limits=limits)
        except DecodeError as exc:
            raise ConfigError(f"{key}.include_events", str(exc)) from None
        token_args = contract.token_args(a for a in abi if isinstance(a, dict))
        batches = {
            event: tuple(a for a in (source.arg, source.amount_arg) if a is not None)
            for event, source in token_args.items()
            if source is not None and source.batch
        }
        if batches:  # built again, its fanned-out arrays bounded as parts (the ABI is checked)
            decoder = EventDecoder.from_abi(
                abi, contract.include_events, limits=limits, batches=batches
            )
        out[contract.address.lower()] = Contract(contract, decoder, token_args)
    return out


class ChunkEncoder:
    def __init__(self, contracts: Mapping[str, Contract], publisher: EventPublisher) -> None:
        self.contracts = dict(contracts)
        self.publisher = publisher

    def log_filter(self) -> tuple[list[str], list[list[str]]]:
        """The ``eth_getLogs`` address and topics filters of these contracts' events."""
        topics = sorted({t for c in self.contracts.values() for t in c.decoder.topic0s})
        return sorted(self.contracts), [topics]

    @classmethod
    def from_settings(cls, settings: Settings, network: str) -> ChunkEncoder:
        net = settings.network(network)
        contracts = load_contracts(settings, network)
        token_args = {
            (address, event): arg
            for address, contract in contracts.items()
            for event, arg in contract.token_args.items()
        }
        publisher = EventPublisher(
            chain_id=net.chain_id,
            network=network,
            topic=settings.kafka.topics.chain_events,
            token_args=token_args,
            final_label="safe" if net.confirmations.tag == "safe" else "finalized",
        )
        return cls(contracts, publisher)

    def encode(
        self,
        logs: Sequence[RawLog],
        timestamps: Mapping[int, int] | None = None,
        *,
        keep_events: bool = False,
        final_block: int | None = None,
    ) -> Encoded:
        """Decode our events among ``logs`` and serialise them, in log order.

        Logs of other contracts, of events not configured, or before a contract's start block
        are skipped; logs that carry a configured event's topic0 but do not match its ABI are
        counted as undecodable (never raised: one odd log must not stop the stream).
        ``final_block``: the network's final block when the logs were read (None: all final).
        """
        out = Encoded()
        contracts = self.contracts
        message = self.publisher.encoded
        names: Counter[str] = Counter()
        cuts: Counter[str] = Counter()
        for raw in logs:
            contract = contracts.get(raw["address"].lower())
            if contract is None:
                continue
            try:
                event = contract.decoder.decode(raw)
            except DecodeError as exc:
                out.undecodable += 1
                if len(out.reasons) < _MAX_REPORTED:
                    out.reasons.append(
                        f"{contract.settings.name} block {raw.get('blockNumber')} "
                        f"tx {raw.get('transactionHash')} log {raw.get('logIndex')}: {exc}"
                    )
                continue
            if event is None or event.block_number < contract.settings.start_block:
                continue
            timestamp = event.block_timestamp
            if timestamp is None and timestamps is not None:
                timestamp = timestamps.get(event.block_number)
            if event.truncated:
                cuts[event.name] += len(event.truncated)
            source = contract.token_args.get(event.name)
            parts = fan_out(event, source)
            if source is not None and source.batch and event.truncated:
                _warn_batch_cut(contract.settings.name, event, source, len(parts))
            for part in parts:
                encoded = message(part, timestamp, final_block)
                if part.truncated:
                    encoded = _with_truncated(encoded, part.truncated)
                out.messages.append(encoded)
                names[contract.settings.name] += 1
                if keep_events:
                    out.events.append(part)
        out.counts = dict(names)
        out.cuts = dict(cuts)
        return out


def _warn_batch_cut(contract: str, event: DecodedEvent, source: TokenSource, parts: int) -> None:
    """Loud: a batch over ``max_batch_parts`` loses the transfers past the cap downstream
    (balances), though its parts say so. Rare and hostile-looking, so logged each time."""
    truncated = event.truncated or {}
    cut = {a: truncated[a]["items"] for a in (source.arg, source.amount_arg) if a in truncated}
    if not cut:
        return  # another argument was cut: every part still published
    # Fetched per call: a logger cached before a test's capture would not be seen.
    structlog.get_logger("dnft.indexer").warning(
        "batch cut to max_batch_parts: the items past it are not published",
        contract=contract,
        event_name=event.name,
        block=event.block_number,
        tx=event.tx_hash,
        log_index=event.log_index,
        items=cut,
        published=parts,
    )


def _with_truncated(
    encoded: tuple[bytes, bytes, bytes], truncated: dict[str, dict[str, Any]]
) -> tuple[bytes, bytes, bytes]:
    """The message with its ``truncated`` property (dnft.chain.event.v1), only for events
    with a value cut: every other event's bytes stay exactly what they were. Rare, and the
    cut message is small, so parsing it once more costs nothing that matters."""
    key, value, eid = encoded
    body = orjson.loads(value)
    body["truncated"] = truncated
    return key, orjson.dumps(body), eid
