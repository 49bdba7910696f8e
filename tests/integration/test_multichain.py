"""Two chains at once in one `dnft run --all` on real anvil, tansu and Postgres: two anvils with
different chain ids (``ticking_anvil`` and ``second_ticking_anvil``), one collection on each,
each network's pushes signed by its own key (``pusher.signers``); versions stay apart by chain
id, each chain's announcements are mined by its own key, `dnft audit` is clean for both.

* the sample contract on both chains, at the same address (same deployer, same nonce), with
  the same token ids: only the chain id tells them apart;
* stock OpenZeppelin contracts not written for dnft: an ERC-721 (ERC-4906, a custom event
  whose token argument is ``hero``) on one chain and an ERC-1155 (``TransferBatch``) on the
  other, each with a ``where:`` condition and a CEL trait, each announced through the
  contract's own owner-only function."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import yaml
from eth_account import Account
from eth_utils.crypto import keccak
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.types import Wei

from dnft.contracts import DevSigner, at, deploy, transact
from dnft.devservices import AnvilService
from dnft.devservices.ports import free_port
from tests.support.chain import COLLECTION_ABI, Deployment, World, make_world
from tests.support.cli import run_dnft, write_config
from tests.support.daemon import DaemonProcess
from tests.support.indexer import IndexerConfigFor
from tests.support.pushed import announcements, coverage, nonce
from tests.support.pusher import Updater, funded_updater, write_key

REPO = Path(__file__).resolve().parents[2]
TOKENS = {1, 2, 3}


def collection_file(path: Path, name: str, contract: str) -> dict[str, Any]:
    """The sample collection, renamed and bound to ``contract``, small images."""
    collection = yaml.safe_load((REPO / "collections/sample.yaml").read_text())
    collection |= {"name": name, "contract": contract, "image_size": 64}
    path.write_text(yaml.safe_dump(collection))
    return {"file": str(path)}


async def latest_fed(dsn: str) -> dict[tuple[str, int], int]:
    """(collection, token) -> the ``fed`` trait of its latest version."""
    return {k: int(traits["fed"]) for k, traits in (await latest_traits(dsn)).items()}


async def fetch(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(dsn)
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


async def chains_of_events(db: str) -> list[tuple[str, int]]:
    """(collection, chain id) of every stored event: each collection's from its chain only."""
    rows = await fetch(
        db,
        "select distinct collection, split_part(event_id, ':', 1)::bigint from regen_events",
    )
    return sorted((str(r[0]), int(r[1])) for r in rows)


class TestTwoChains:
    """The sample contract on both chains; a default key (``signer``) and one network's own
    (``signers``)."""

    async def test_one_process_two_chains_two_keys(
        self,
        ticking_anvil: AnvilService,
        second_ticking_anvil: AnvilService,
        indexer_config_for: IndexerConfigFor,
        unique_topic: Callable[[str], str],
        tmp_path: Path,
    ) -> None:
        first, second = await asyncio.gather(
            make_world(ticking_anvil.rpc_url, mint_count=3),
            make_world(second_ticking_anvil.rpc_url, mint_count=3),
        )
        assert first.chain_id != second.chain_id
        assert first.address == second.address  # only the chain id tells them apart
        updater_1, updater_2 = await funded_updater(first), await funded_updater(second)
        # Token 2 is fed on the second chain only, token 1 on the first only.
        for _ in range(3):
            await second.feed(2)
        await first.feed(1)

        health_port = free_port()
        raw: dict[str, Any] = indexer_config_for(first, http_port=health_port)
        raw["networks"].append(
            {
                **raw["networks"][0],
                "name": "second",
                "chain_id": second.chain_id,
                "rpc_urls": [second.rpc_url],
                "confirmations": {"depth": 4},  # each network its own policy
            }
        )
        raw["contracts"].append(
            {"name": "collection2", "network": "second", "address": second.address,
             "abi": COLLECTION_ABI, "start_block": 0}
        )  # fmt: skip
        raw["kafka"]["topics"] |= {
            name: unique_topic(name)
            for name in ("oracle_observations", "render_jobs", "metadata_updates", "dead_letter")
        }
        raw["collections"] = [
            collection_file(tmp_path / "first.yaml", "first", "collection"),
            collection_file(tmp_path / "second.yaml", "second", "collection2"),
        ]
        raw["regenerator"] = {
            "storage": {"kind": "local", "path": str(tmp_path / "blobs")},
            "public_url": "http://127.0.0.1:1",
            "planner_group": unique_topic("planner"),
            "render_group": unique_topic("render"),
        }
        raw["api"] = {"port": free_port(), "collection": "first"}
        raw["pusher"] = {
            "group": unique_topic("pusher"),
            "collections": [{"contract": "collection"}, {"contract": "collection2"}],
            "signer": {"key_file": str(write_key(tmp_path / "first.key", updater_1))},
            "signers": {"second": {"key_file": str(write_key(tmp_path / "second.key", updater_2))}},
            "window_s": 0.5,
            "confirmations": 2,
            "poll_interval_s": 0.1,
        }
        config = write_config(tmp_path / "dnft.yaml", raw)
        db = raw["postgres"]["dsn"]

        daemon = DaemonProcess("run --all", config, health_port, tmp_path / "run.log")
        daemon.start()
        try:
            want = {(c, t): 0 for c in ("first", "second") for t in TOKENS}
            want |= {("first", 1): 1, ("second", 2): 3}

            seen: dict[tuple[str, int], int] = {}

            async def fed_as_on_chain() -> bool:
                seen.clear()
                seen.update(await latest_fed(db))
                return seen == want

            try:
                await daemon.until(fed_as_on_chain, 90, "each chain's tokens as fed there")
            except AssertionError as exc:
                raise AssertionError(f"latest versions {seen}, want {want}") from exc
            # Each collection's events came from its own chain only.
            assert await chains_of_events(db) == [
                ("first", first.chain_id),
                ("second", second.chain_id),
            ]

            async def covered(world: World) -> bool:
                return set(coverage(await announcements(world))) >= TOKENS

            for world in (first, second):
                await daemon.until(partial(covered, world), 60, "announced on each chain")
            # Each chain's announcements were mined by that chain's own key, and only there.
            for world, updater in ((first, updater_1), (second, updater_2)):
                hashes = {h for h, *_ in await announcements(world)}
                assert await tx_senders(world.w3, hashes) == {updater.address.lower()}
            assert await nonce(first, updater_2.address) == 0
            assert await nonce(second, updater_1.address) == 0
            assert sorted(
                await fetch(db, "select distinct chain_id, sender from pusher_pushes")
            ) == [
                (first.chain_id, updater_1.address.lower()),
                (second.chain_id, updater_2.address.lower()),
            ]
            text = daemon.log_tail(200_000)
            for network, updater in (("local", updater_1), ("second", updater_2)):
                assert any(
                    '"pusher running"' in line
                    and f'"network": "{network}"' in line
                    and updater.address in line
                    for line in text.splitlines()
                ), network

            for network, world in (("local", first), ("second", second)):
                await assert_audit_clean(config, network, world.w3)
            assert daemon.alive()
            assert daemon.terminate() == 0
        finally:
            daemon.kill9()


# --- Stock contracts: an OpenZeppelin ERC-721 and ERC-1155 not written for dnft ---------------

ABI_DIR = REPO / "schemas" / "abi"
BATCH_METADATA_UPDATE = "0x" + keccak(text="BatchMetadataUpdate(uint256,uint256)").hex()
METADATA_UPDATE = "0x" + keccak(text="MetadataUpdate(uint256)").hex()
URI = "0x" + keccak(text="URI(string,uint256)").hex()
# Heroes (ERC-721): sword experience only (a `where:` on the skill), a CEL rank from it.
HEROES: dict[str, Any] = {
    "name": "heroes",
    "contract": "heroes",
    "salt": "multichain-heroes",
    "token_name": "Hero #{token_id}",
    "image_size": 64,
    "traits": [
        {"name": "sword_xp", "event": "Trained", "reduce": "sum", "arg": "xp",
         "where": {"arg": "skill", "equals": "sword"}},
        {"name": "rank", "expr": 'traits.sword_xp >= 100 ? "veteran" : "recruit"',
         "default": "recruit"},
    ],
    "stages": {"trait": "sword_xp", "levels": [{"min": 0, "name": "recruit"},
                                               {"min": 100, "name": "veteran"}]},
    "prompt": "a {stage} hero, {rank}",
    "renderer": {"kind": "procedural"},
}  # fmt: skip
# Items (ERC-1155): supply from single and batched transfers, single transfers of more than
# one counted (a CEL condition), a CEL trait on the supply.
ITEMS: dict[str, Any] = {
    "name": "items",
    "contract": "items",
    "salt": "multichain-items",
    "token_name": "Item #{token_id}",
    "image_size": 64,
    "traits": [
        {"name": "supply", "events": ["TransferSingle", "TransferBatch"], "reduce": "balance",
         "output": "total"},
        {"name": "big_single", "event": "TransferSingle", "reduce": "count",
         "where": "args.value > 1"},
        {"name": "rarity", "expr": 'traits.supply <= 2 ? "rare" : "common"', "default": "common"},
    ],
    "stages": {"trait": "supply", "levels": [{"min": 0, "name": "scarce"},
                                             {"min": 5, "name": "plentiful"}]},
    "prompt": "a {stage} {rarity} item",
    "renderer": {"kind": "procedural"},
}  # fmt: skip


async def owned_by(rpc_url: str, name: str, owner: str) -> tuple[AsyncWeb3[Any], Any, DevSigner]:
    """Contract ``name`` deployed by anvil's first dev account with ``owner`` as its Ownable
    owner; (web3, contract, deployer)."""
    w3 = AsyncWeb3(AsyncHTTPProvider(rpc_url))
    dev = DevSigner()
    address = await deploy(w3, name, owner, sender=dev)
    return w3, at(w3, name, address), dev


async def fresh_key(w3: AsyncWeb3[Any], dev: DevSigner) -> Updater:
    """A new key holding 10 ETH on this chain only."""
    account = Account.create()
    await dev.transact(w3, {"to": account.address, "value": Wei(10 * 10**18)})
    return Updater(account.key.hex().removeprefix("0x"), account.address)


async def announced(w3: AsyncWeb3[Any], address: str) -> tuple[set[int], set[str]]:
    """(token ids announced, hashes of the announcing transactions) on this chain: ERC-4906
    ``MetadataUpdate`` / ``BatchMetadataUpdate`` and ERC-1155 ``URI``, decoded by hand."""
    logs = await w3.provider.make_request(
        "eth_getLogs",
        [{"address": address, "fromBlock": "0x0", "toBlock": "latest",
          "topics": [[METADATA_UPDATE, BATCH_METADATA_UPDATE, URI]]}],
    )  # fmt: skip
    ids: set[int] = set()
    hashes: set[str] = set()
    for entry in logs["result"]:
        topic, data = entry["topics"][0], bytes.fromhex(entry["data"][2:])
        if topic == URI:
            ids.add(int(entry["topics"][1], 16))
        elif topic == METADATA_UPDATE:
            ids.add(int.from_bytes(data[:32], "big"))
        else:
            first, last = int.from_bytes(data[:32], "big"), int.from_bytes(data[32:64], "big")
            ids.update(range(first, last + 1))
        hashes.add(entry["transactionHash"])
    return ids, hashes


async def tx_senders(w3: AsyncWeb3[Any], hashes: set[str]) -> set[str]:
    """The lowercase ``from`` addresses of these transactions."""
    return {str((await w3.eth.get_transaction(h))["from"]).lower() for h in hashes}  # type: ignore[arg-type]


async def latest_traits(dsn: str) -> dict[tuple[str, int], dict[str, Any]]:
    """(collection, token) -> the traits of its latest version."""
    out = {}
    for collection, token, state in await fetch(
        dsn,
        "select distinct on (collection, token_id) collection, token_id, state"
        " from token_versions order by collection, token_id, version desc",
    ):
        state = state if isinstance(state, dict) else orjson.loads(state)
        out[(collection, int(token))] = state["traits"]
    return out


class TestStockContractsOnTwoChains:
    """The issue's end-to-end case: a stock ERC-721 (ERC-4906, a custom event whose token
    argument is `hero`) on one chain, a stock ERC-1155 (TransferBatch) on another, each with
    a `where:` condition and a CEL trait, each announced through the contract's own function
    by its own key, in one `dnft run --all`; `dnft audit` clean on both."""

    async def test_heroes_and_items(
        self,
        ticking_anvil: AnvilService,
        second_ticking_anvil: AnvilService,
        indexer_config_for: IndexerConfigFor,
        unique_topic: Callable[[str], str],
        tmp_path: Path,
    ) -> None:
        dev_address = DevSigner().address
        w3_a, heroes, dev_a = await owned_by(ticking_anvil.rpc_url, "StockERC721", dev_address)
        w3_b, items, dev_b = await owned_by(second_ticking_anvil.rpc_url, "StockERC1155",
                                            dev_address)  # fmt: skip
        for _ in range(3):  # heroes 0, 1, 2, held by the deployer
            await transact(w3_a, heroes, "safeMint", dev_address, sender=dev_a)
        await transact(w3_a, heroes, "train", 1, 150, "sword", sender=dev_a)
        await transact(w3_a, heroes, "train", 1, 40, "bow", sender=dev_a)  # not a sword
        await transact(w3_a, heroes, "train", 2, 30, "sword", sender=dev_a)
        holder = Account.create().address
        await transact(w3_b, items, "mintBatch", dev_address, [1, 2, 3], [5, 1, 2], b"",
                       sender=dev_b)  # fmt: skip
        await transact(w3_b, items, "mint", holder, 2, 4, b"", sender=dev_b)
        # The pushers' keys own the contracts (their announcing functions are owner-only).
        key_a, key_b = await fresh_key(w3_a, dev_a), await fresh_key(w3_b, dev_b)
        await transact(w3_a, heroes, "transferOwnership", key_a.address, sender=dev_a)
        await transact(w3_b, items, "transferOwnership", key_b.address, sender=dev_b)

        health_port = free_port()
        first = Deployment(ticking_anvil.rpc_url, ticking_anvil.chain_id, heroes.address)
        raw: dict[str, Any] = indexer_config_for(first, http_port=health_port)
        raw["networks"].append(
            {**raw["networks"][0], "name": "second", "chain_id": second_ticking_anvil.chain_id,
             "rpc_urls": [second_ticking_anvil.rpc_url], "confirmations": {"depth": 4}}
        )  # fmt: skip
        raw["contracts"] = [
            {"name": "heroes", "network": "local", "address": heroes.address,
             "abi": str(ABI_DIR / "StockERC721.json"),
             "events": {"Trained": {"token": {"arg": "hero"}}}},
            {"name": "items", "network": "second", "address": items.address,
             "abi": str(ABI_DIR / "StockERC1155.json")},
        ]  # fmt: skip
        raw["kafka"]["topics"] |= {
            name: unique_topic(name)
            for name in ("oracle_observations", "render_jobs", "metadata_updates", "dead_letter")
        }
        (tmp_path / "heroes.yaml").write_text(yaml.safe_dump(HEROES))
        (tmp_path / "items.yaml").write_text(yaml.safe_dump(ITEMS))
        raw["collections"] = [{"file": str(tmp_path / f"{n}.yaml")} for n in ("heroes", "items")]
        raw["regenerator"] = {
            "storage": {"kind": "local", "path": str(tmp_path / "blobs")},
            "public_url": "http://127.0.0.1:1",
            "planner_group": unique_topic("planner"),
            "render_group": unique_topic("render"),
        }
        raw["api"] = {"port": free_port(), "collection": "heroes"}
        raw["pusher"] = {
            "group": unique_topic("pusher"),
            "collections": [
                {"contract": "heroes", "mode": "call", "args": "range",
                 "function": "emitBatchMetadataUpdate(uint256,uint256)"},
                {"contract": "items", "mode": "call", "args": "id_uri",
                 "function": "setURI(uint256,string)", "uri_template": "ipfs://{cid}"},
            ],
            "signers": {
                "local": {"key_file": str(write_key(tmp_path / "a.key", key_a))},
                "second": {"key_file": str(write_key(tmp_path / "b.key", key_b))},
            },
            "window_s": 0.5,
            "confirmations": 2,
            "poll_interval_s": 0.1,
        }  # fmt: skip
        config = write_config(tmp_path / "dnft.yaml", raw)
        db = raw["postgres"]["dsn"]

        daemon = DaemonProcess("run --all", config, health_port, tmp_path / "run.log")
        daemon.start()
        try:
            want = {
                # Numbers are stored as decimal strings. Token 1 trained 40 with a bow too.
                ("heroes", 0): {"sword_xp": "0", "rank": "recruit"},
                ("heroes", 1): {"sword_xp": "150", "rank": "veteran"},
                ("heroes", 2): {"sword_xp": "30", "rank": "recruit"},
                # A batch of [5, 1, 2] (fanned out per id), then a single mint of 4 of item 2.
                ("items", 1): {"supply": "5", "big_single": "0", "rarity": "common"},
                ("items", 2): {"supply": "5", "big_single": "1", "rarity": "common"},
                ("items", 3): {"supply": "2", "big_single": "0", "rarity": "rare"},
            }
            seen: dict[tuple[str, int], dict[str, Any]] = {}

            async def traits_as_on_chain() -> bool:
                seen.clear()
                for k, traits in (await latest_traits(db)).items():
                    seen[k] = {n: traits.get(n) for n in want.get(k, traits)}
                return seen == want

            try:
                await daemon.until(traits_as_on_chain, 90, "each chain's tokens as on chain")
            except AssertionError as exc:
                raise AssertionError(f"latest traits {seen}, want {want}") from exc
            assert await chains_of_events(db) == [
                ("heroes", first.chain_id),
                ("items", second_ticking_anvil.chain_id),
            ]

            for w3, contract, ids, key in (
                (w3_a, heroes, {0, 1, 2}, key_a),
                (w3_b, items, {1, 2, 3}, key_b),
            ):

                async def all_announced(w3: Any = w3, contract: Any = contract,
                                        ids: set[int] = ids) -> bool:  # fmt: skip
                    return (await announced(w3, contract.address))[0] >= ids

                await daemon.until(all_announced, 60, f"announced through {contract.address}")
                hashes = (await announced(w3, contract.address))[1]
                assert await tx_senders(w3, hashes) == {key.address.lower()}
            assert sorted(
                await fetch(db, "select distinct chain_id, sender from pusher_pushes")
            ) == [
                (first.chain_id, key_a.address.lower()),
                (second_ticking_anvil.chain_id, key_b.address.lower()),
            ]
            for network, w3 in (("local", w3_a), ("second", w3_b)):
                await assert_audit_clean(config, network, w3)
            assert daemon.alive()
            assert daemon.terminate() == 0
        finally:
            daemon.kill9()


async def assert_audit_clean(config: Path, network: str, w3: AsyncWeb3[Any]) -> None:
    """`dnft audit` of ``network`` from block 0 to below its finality depth is clean (within
    10 tries: the indexer and planner catch up within seconds)."""
    output = ""
    for _ in range(10):
        to_block = int(await w3.eth.block_number) - 6
        result = await asyncio.to_thread(
            run_dnft, config, "audit", "--network", network, "--from-block", "0",
            "--to-block", str(to_block), "--quiet-s", "0.5", "--json",
        )  # fmt: skip
        output = result.stdout + result.stderr
        report = orjson.loads(result.stdout) if result.stdout.strip() else {}
        if result.returncode == 0 and report.get("clean") is True:
            return
        await asyncio.sleep(1)
    raise AssertionError(f"audit of {network} not clean: {output}")
