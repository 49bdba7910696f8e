"""Decoded events -> Kafka messages (``dnft.chain.event.v1``) and their retractions.

Keys keep per-token order: ``chainId:contract:tokenId`` when the event names a token, else
``chainId:contract``. The event id ``chainId:blockHash:logIndex`` is deterministic, so a
republished event (restart, replay) carries the same id and consumers drop the duplicate; a
part of a batch event (``indexer.fanout``: one per ERC-1155 id) adds its position,
``chainId:blockHash:logIndex:part``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import orjson

from dnft.config import DEFAULT_TOKEN_ID_ARGS, TokenSource
from dnft.kafka import OutgoingMessage
from dnft.messages import Finality, finality_of
from schemas import CHAIN_EVENT_V1, CHAIN_RETRACTION_V1

# (contract address lowercase, event name) -> where the token id comes from, or None for an
# event of no single token (``ContractSettings.token_args``, resolved once at start).
TokenArgs = Mapping[tuple[str, str], TokenSource | None]
_UNLISTED = ""  # not an argument name an ABI can give a token id (it must be named)


class Event(Protocol):
    """What the publisher needs of a decoded log (``indexer.decode.DecodedEvent``)."""

    @property
    def name(self) -> str: ...
    @property
    def args(self) -> dict[str, Any]: ...
    @property
    def address(self) -> str: ...
    @property
    def block_number(self) -> int: ...
    @property
    def block_hash(self) -> str: ...
    @property
    def tx_hash(self) -> str: ...
    @property
    def log_index(self) -> int: ...


# The Kafka header that carries every chain message's event id.
EVENT_ID_HEADER = "event-id"


def event_id(chain_id: int, block_hash: str, log_index: int, part: int | None = None) -> str:
    base = f"{chain_id}:{block_hash.lower()}:{log_index}"
    return base if part is None else f"{base}:{part}"


def part_of(event_id: str) -> int | None:
    """The batch item an event id names (its fourth field), or None for a whole log's."""
    fields = event_id.split(":")
    return int(fields[3]) if len(fields) == 4 and fields[3].isdigit() else None


def token_id_of(
    args: Mapping[str, Any], names: Iterable[str] = DEFAULT_TOKEN_ID_ARGS
) -> str | None:
    """The first of ``names`` in ``args`` holding a token id (an integer >= 0), as a string."""
    for name in names:
        value = args.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return str(value)
    return None


def jsonable(value: Any) -> Any:
    """Integers become decimal strings (uint256 exceeds JSON's safe integers)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return str(value)


class EventPublisher:
    """Builds the messages for one network; pure (no I/O), cheap enough for the hot path.

    ``token_args`` says where each contract's events carry their token id; an event it does
    not list (a publisher built without settings) falls back to the default names."""

    def __init__(
        self,
        *,
        chain_id: int,
        network: str,
        topic: str,
        token_args: TokenArgs | None = None,
        final_label: Finality = "finalized",
    ) -> None:
        self.chain_id = chain_id
        self.network = network
        self.topic = topic
        # What the network's confirmation policy calls a final block (safe | finalized).
        self.final_label: Finality = final_label
        self.token_args: dict[tuple[str, str], TokenSource | None] = dict(token_args or {})

    def token_id(self, event: Event) -> str | None:
        """The token the event names, or None (collection-wide, or of no token)."""
        return self._token_id(event.address.lower(), event.name, event.args)

    def _token_id(self, contract: str, name: str, args: Mapping[str, Any]) -> str | None:
        source = self.token_args.get((contract, name), _UNLISTED)
        if source is None:
            return None
        if isinstance(source, str):
            return token_id_of(args)
        value = args.get(source.arg)  # a batch's part holds its own id (indexer.fanout)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return str(value)
        return None

    def event_id(self, event: Event) -> str:
        # ``part``: set on a batch's parts only (``DecodedEvent.part``); not part of Event, so
        # any decoded-event shape without it publishes as a whole log.
        part: int | None = getattr(event, "part", None)
        return event_id(self.chain_id, event.block_hash, event.log_index, part)

    def key(self, contract: str, token_id: str | None) -> str:
        if token_id is None:
            return f"{self.chain_id}:{contract}"
        return f"{self.chain_id}:{contract}:{token_id}"

    def encoded(
        self, event: Event, block_timestamp: int | None = None, final_block: int | None = None
    ) -> tuple[bytes, bytes, bytes]:
        """(key, value, event id) of the event's message: cheap to pickle between processes.
        ``final_block``: the network's final block when read (None: the event's block is final,
        as in a backfill), for the message's ``finality``."""
        contract = event.address.lower()
        token_id = self._token_id(contract, event.name, event.args)
        eid = self.event_id(event)
        body = {
            "schema": CHAIN_EVENT_V1,
            "event_id": eid,
            "chain_id": self.chain_id,
            "network": self.network,
            "contract": contract,
            "event": event.name,
            "args": jsonable(event.args),
            "token_id": token_id,
            "block_number": event.block_number,
            "block_hash": event.block_hash.lower(),
            "block_timestamp": block_timestamp,
            "tx_hash": event.tx_hash.lower(),
            "log_index": event.log_index,
            "removed": False,
            "finality": finality_of(event.block_number, final_block, self.final_label),
        }
        return self.key(contract, token_id).encode(), orjson.dumps(body), eid.encode()

    def outgoing(self, encoded: tuple[bytes, bytes, bytes]) -> OutgoingMessage:
        key, value, eid = encoded
        return OutgoingMessage(self.topic, value=value, key=key, headers=((EVENT_ID_HEADER, eid),))

    def retraction_body(self, event: Event) -> dict[str, Any]:
        """What to publish if this event's block is orphaned (stored until it is final)."""
        return {
            "schema": CHAIN_RETRACTION_V1,
            "event_id": self.event_id(event),
            "chain_id": self.chain_id,
            "network": self.network,
            "contract": event.address.lower(),
            "event": event.name,
            "token_id": self.token_id(event),
            "block_number": event.block_number,
            "block_hash": event.block_hash.lower(),
            "removed": True,
        }

    def retraction(self, body: dict[str, Any]) -> OutgoingMessage:
        """The retraction message, on the original event's topic and key."""
        key = self.key(body["contract"], body.get("token_id"))
        return OutgoingMessage(
            self.topic,
            value=orjson.dumps(body),
            key=key.encode(),
            headers=((EVENT_ID_HEADER, str(body["event_id"]).encode()),),
        )
