"""A deployed sample collection on a real chain: traffic, independent reads of its events, and
what the indexer's stream of them amounts to, in the same shape.

The "independent read" decodes with web3.py's own ABI machinery, not dnft's decoder, so a
decoding bug cannot hide by being on both sides of the comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.types import TxParams, Wei

from dnft.config import Settings
from dnft.contracts import DevSigner, at, deploy, mint
from indexer import event_id, jsonable, token_id_of
from tests.support.kafka import read_topic

COLLECTION_ABI = str(Path("schemas/abi/DynamicCollection.json").resolve())


class Deployed(Protocol):
    """What a configuration names about a deployed collection: its node, chain and address."""

    @property
    def rpc_url(self) -> str: ...

    @property
    def chain_id(self) -> int: ...

    @property
    def address(self) -> str: ...


@dataclass(frozen=True)
class Deployment:
    """A collection's coordinates without a live world behind them (e.g. a node that is down)."""

    rpc_url: str
    chain_id: int
    address: str


@dataclass
class World:
    rpc_url: str
    w3: AsyncWeb3[Any]
    signer: DevSigner
    address: str
    collection: Any
    chain_id: int

    async def feed(self, token_id: int, amount: int = 1) -> Any:
        return await self.signer.transact(self.w3, self._feed_tx(token_id, amount))

    async def send_feed(self, token_id: int, amount: int = 1) -> Any:
        """Send without waiting for the receipt (fast traffic)."""
        tx = self._feed_tx(token_id, amount)
        tx["gas"] = 60_000
        return await self.signer.send(self.w3, tx)

    def _feed_tx(self, token_id: int, amount: int) -> TxParams:
        data = self.collection.encode_abi("feed", [token_id])
        return {"to": self.address, "value": Wei(amount), "data": data}

    async def set_trait(self, token_id: int, key: str, value: str) -> Any:
        data = self.collection.encode_abi("setTrait", [token_id, key, value])
        return await self.signer.transact(self.w3, {"to": self.address, "data": data})

    async def rpc(self, method: str, params: list[Any]) -> Any:
        return await self.w3.provider.make_request(method, params)

    async def block_number(self) -> int:
        return int(await self.w3.eth.block_number)


async def make_world(rpc_url: str, mint_count: int = 0) -> World:
    """The sample collection deployed by anvil's first dev account, ``mint_count`` tokens
    minted to it."""
    w3 = AsyncWeb3(AsyncHTTPProvider(rpc_url))
    signer = DevSigner()
    address = await deploy(
        w3, "DynamicCollection", "Test", "TST", "http://127.0.0.1/t/", True, 0, sender=signer
    )
    collection = at(w3, "DynamicCollection", address)
    world = World(rpc_url, w3, signer, address, collection, int(await w3.eth.chain_id))
    if mint_count:
        await mint(w3, collection, signer.address, mint_count, sender=signer)
    return world


async def canonical_events(world: World, to_block: int) -> dict[str, dict[str, Any]]:
    """event_id -> {event, args, token_id} read straight from the node and decoded by web3."""
    logs = await world.w3.eth.get_logs(
        {
            "address": world.w3.to_checksum_address(world.address),
            "fromBlock": 0,
            "toBlock": to_block,
        }
    )
    by_topic = {}
    for item in world.collection.abi:
        if item.get("type") == "event":
            ev = getattr(world.collection.events, item["name"])()
            by_topic[ev.topic] = ev
    out: dict[str, dict[str, Any]] = {}
    for entry in logs:
        ev = by_topic.get(entry["topics"][0].to_0x_hex())
        if ev is None:
            continue
        decoded = ev.process_log(entry)
        args = {
            k: (v.lower() if isinstance(v, str) and v.startswith("0x") else v)
            for k, v in dict(decoded["args"]).items()
        }
        eid = event_id(world.chain_id, entry["blockHash"].to_0x_hex(), entry["logIndex"])
        out[eid] = {
            "event": decoded["event"],
            "args": jsonable(args),
            "token_id": token_id_of(dict(decoded["args"])),
        }
    return out


def chain_stream(settings: Settings) -> list[dict[str, Any]]:
    """Every message on the settings' chain-events topic (see ``read_topic``)."""
    return read_topic(settings.kafka.bootstrap_servers[0], settings.kafka.topics.chain_events)


def final_events(messages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What a consumer of the indexer's stream ends with (events by id, retractions removing
    them, in partition order), shaped as :func:`canonical_events` is."""
    state: dict[str, dict[str, Any]] = {}
    for m in messages:
        if m["removed"]:
            state.pop(m["event_id"], None)
        else:
            state[m["event_id"]] = m
    return {
        eid: {"event": m["event"], "args": m["args"], "token_id": m["token_id"]}
        for eid, m in state.items()
    }
