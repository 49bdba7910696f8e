"""A stock OpenZeppelin ERC-1155 on a real anvil, indexed into real tansu and planned into real
Postgres: a ``mintBatch`` is one message per id with its amount, each keyed by its token;
single and batch transfers both reach the planner's stored events, and a ``reduce: balance``
trait over both gives each token's holders. A batch larger than ``max_array_items`` (600 ids:
the arrays once shared that budget, and 424 ids reached Kafka) is published whole."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from eth_utils.address import to_checksum_address

from audit import net_events, read_chain, reconcile
from dnft.collection import BoundCollection, collection_from_mapping
from dnft.collection.abi import read_abi_events
from dnft.config import settings_from_mapping
from dnft.kafka import AsyncProducer
from dnft.messages import ChainEvent, decode_message
from regenerator import Planner
from tests.support.indexer import IndexerConfigFor, index_to_head
from tests.support.kafka import read_topic
from tests.support.stock import STOCK_ERC1155_ABI, deploy_stock

BOB = "0x" + "b0" * 20  # an address with no code: safeTransferFrom needs no receiver hook
RULES = {
    "name": "items",
    "contract": "collection",
    "salt": "items-v1",
    "traits": [
        {"name": "holders", "events": ["TransferSingle", "TransferBatch"], "reduce": "balance"},
        {"name": "supply", "events": ["TransferSingle", "TransferBatch"], "reduce": "balance",
         "output": "total"},
        {"name": "batched", "event": "TransferBatch", "reduce": "count"},
        {"name": "holder_count", "expr": "size(traits.holders)"},
    ],
    "stages": {"trait": "supply",
               "levels": [{"min": 0, "name": "few"}, {"min": 20, "name": "many"}]},
    "prompt": "{stage} items",
}  # fmt: skip


class TestErc1155:
    async def test_batches_fan_out_per_id_through_kafka_to_the_planner(
        self,
        anvil: Any,
        indexer_config_for: IndexerConfigFor,
        unique_topic: Callable[[str], str],
    ) -> None:
        items = await deploy_stock(anvil.rpc_url, "StockERC1155")
        owner = items.owner.lower()
        mint = await items.call("mintBatch", items.owner, [1, 2, 3], [10, 20, 30], b"")
        bob = to_checksum_address(BOB)
        await items.call("safeTransferFrom", items.owner, bob, 2, 5, b"")
        await items.call("safeBatchTransferFrom", items.owner, bob, [3, 1], [30, 1], b"")

        raw = indexer_config_for(items)
        raw["contracts"][0]["abi"] = STOCK_ERC1155_ABI
        settings = settings_from_mapping(raw, {})
        head = await index_to_head(settings, items)  # type: ignore[arg-type]

        topic = settings.kafka.topics.chain_events
        bodies = await asyncio.to_thread(read_topic, settings.kafka.bootstrap_servers[0], topic)
        transfers = [b for b in bodies if b["event"] in ("TransferSingle", "TransferBatch")]
        assert len(transfers) == 6, "3 + 1 + 2 token transfers"
        mint_tx = mint["transactionHash"].to_0x_hex()
        # Partitions are read one after another: order by event id (log, then item).
        minted = sorted((b for b in transfers if b["tx_hash"] == mint_tx), key=_event_id)
        assert [(b["token_id"], b["args"]["ids"], b["args"]["values"]) for b in minted] == [
            ("1", "1", "10"),
            ("2", "2", "20"),
            ("3", "3", "30"),
        ]
        assert len({b["event_id"] for b in transfers}) == 6
        # Keyed by token: a token's single and batch transfers share its partition.
        contract = items.address.lower()
        assert all(b["_key"] == f"{items.chain_id}:{contract}:{b['token_id']}" for b in transfers)
        assert all(b["event_id"].count(":") == 3 for b in minted), "log id + item"

        # The audit reads the chain as the indexer does: each part is an event it expects,
        # present once in Kafka (parts of one log are not duplicates of each other).
        chain = await read_chain(settings, "local", 0, head)
        stream = net_events(bodies)
        report = reconcile("kafka", chain.events, stream.net, stream.tx_hashes)
        assert report.clean, report.as_dict()
        assert report.expected == len(bodies) == len(transfers) + 1  # + OwnershipTransferred

        # The planner stores every part under its own token, and the balances follow.
        events = read_abi_events(Path(STOCK_ERC1155_ABI), "abi")
        collection = collection_from_mapping(RULES, events=events, contract="items")
        bound = BoundCollection(collection, items.chain_id, items.address.lower())
        messages = [
            decode_message(orjson.dumps({k: v for k, v in b.items() if not k.startswith("_")}))
            for b in bodies
        ]
        pool = await asyncpg.create_pool(raw["postgres"]["dsn"], min_size=1, max_size=2)
        producer = AsyncProducer(settings.kafka)
        await producer.start()
        try:
            planner = Planner(pool, producer, [bound], jobs_topic=unique_topic("jobs"))
            jobs = await planner.apply([m for m in messages if isinstance(m, ChainEvent)])
            assert sorted(j.token_id for j in jobs) == [1, 2, 3]
            async with pool.acquire() as conn:
                stored = await conn.fetch(
                    "select token_id, event, args from regen_events where collection = 'items' "
                    "order by block_number, event_id"
                )
                states = {
                    int(r["token_id"]): orjson.loads(r["state"])["traits"]
                    for r in await conn.fetch("select token_id, state from regen_tokens")
                }
        finally:
            await producer.close()
            await pool.close()
        assert [(int(r["token_id"]), r["event"]) for r in stored] == [
            (1, "TransferBatch"),
            (2, "TransferBatch"),
            (3, "TransferBatch"),
            (2, "TransferSingle"),
            (3, "TransferBatch"),
            (1, "TransferBatch"),
        ]
        assert orjson.loads(states[2]["holders"]) == {owner: "15", BOB: "5"}
        assert (states[2]["supply"], states[2]["holder_count"]) == ("20", "2")
        assert orjson.loads(states[3]["holders"]) == {BOB: "30"}
        assert orjson.loads(states[1]["holders"]) == {owner: "9", BOB: "1"}
        assert states[1]["batched"] == "2"

    async def test_a_batch_of_600_ids_reaches_kafka_whole_and_the_audit_is_clean(
        self, anvil: Any, indexer_config_for: IndexerConfigFor
    ) -> None:
        items = await deploy_stock(anvil.rpc_url, "StockERC1155")
        ids = list(range(1, 601))
        amounts = [3 * i for i in ids]
        mint = await items.call("mintBatch", items.owner, ids, amounts, b"")

        raw = indexer_config_for(items)
        raw["contracts"][0]["abi"] = STOCK_ERC1155_ABI
        settings = settings_from_mapping(raw, {})
        assert settings.networks[0].max_array_items < len(ids) + len(amounts)  # the old budget
        head = await index_to_head(settings, items)  # type: ignore[arg-type]

        topic = settings.kafka.topics.chain_events
        bodies = await asyncio.to_thread(read_topic, settings.kafka.bootstrap_servers[0], topic)
        mint_tx = mint["transactionHash"].to_0x_hex()
        minted = sorted((b for b in bodies if b["tx_hash"] == mint_tx), key=_event_id_order)
        assert [(b["token_id"], b["args"]["values"]) for b in minted] == [
            (str(i), str(3 * i)) for i in ids
        ]
        assert all("truncated" not in b for b in minted)
        assert len({b["event_id"] for b in minted}) == len(ids)

        chain = await read_chain(settings, "local", 0, head)
        stream = net_events(bodies)
        report = reconcile("kafka", chain.events, stream.net, stream.tx_hashes)
        assert report.clean, report.as_dict()
        assert report.expected == len(bodies) == len(ids) + 1  # + OwnershipTransferred


def _event_id_order(body: dict[str, Any]) -> int:
    """A part's item number (the fourth field of its event id), for one log's parts."""
    return int(str(body["event_id"]).rsplit(":", 1)[1])


def _event_id(body: dict[str, Any]) -> str:
    return str(body["event_id"])
