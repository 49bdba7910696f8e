"""The sample contracts behave as the engine expects on a real anvil."""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from eth_account import Account
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.contract import AsyncContract
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD
from web3.types import TxReceipt

from dnft import contracts
from dnft.cli import contracts as contracts_command
from dnft.contracts import DevSigner, TransactionReverted
from dnft.devservices import AnvilService
from dnft.errors import MissingDependencyError

pytestmark = pytest.mark.integration

BASE_URI = "https://meta.example/dyn/"
ETH_USD = 3000 * 10**8


@pytest.fixture(scope="module")
def anvil_rpc_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh anvil on a free 127.0.0.1 port (history pruned to 256 blocks: a bare
    --prune-history breaks anvil_reorg), stopped after the module."""
    service = AnvilService(tmp_path_factory.mktemp("anvil"))
    try:
        service.start()
    except MissingDependencyError:
        pytest.skip("anvil is absent: run `npm ci` (it brings @foundry-rs/anvil)")
    try:
        yield service.rpc_url
    finally:
        service.stop()


@pytest_asyncio.fixture(scope="module")
async def w3(anvil_rpc_url: str) -> AsyncIterator[AsyncWeb3[Any]]:
    web3 = AsyncWeb3(AsyncHTTPProvider(anvil_rpc_url))
    yield web3
    await web3.provider.disconnect()


@pytest.fixture(scope="module")
def admin() -> DevSigner:
    """anvil account 0: deployer, so admin, minter and updater."""
    return DevSigner()


@pytest.fixture(scope="module")
def stranger() -> DevSigner:
    """anvil account 1: holds no role."""
    return DevSigner(contracts.anvil_dev_key(1))


@pytest_asyncio.fixture(scope="module")
async def collection(w3: AsyncWeb3[Any], admin: DevSigner) -> AsyncContract:
    address = await contracts.deploy(
        w3, "DynamicCollection", "Dyn", "DYN", BASE_URI, True, 0, sender=admin
    )
    return contracts.at(w3, "DynamicCollection", address)


@pytest_asyncio.fixture(scope="module")
async def aggregator(w3: AsyncWeb3[Any], admin: DevSigner) -> AsyncContract:
    address = await contracts.deploy(w3, "PriceAggregator", 8, "ETH / USD", ETH_USD, sender=admin)
    return contracts.at(w3, "PriceAggregator", address)


def events(contract: AsyncContract, name: str, receipt: TxReceipt) -> list[dict[str, Any]]:
    """Decoded arguments of every ``name`` event ``contract`` emitted in ``receipt``."""
    event = getattr(contract.events, name)()
    return [dict(e["args"]) for e in event.process_receipt(receipt, errors=DISCARD)]


async def new_token(w3: AsyncWeb3[Any], collection: AsyncContract, owner: DevSigner) -> int:
    """Mint one fresh token to ``owner`` (minting is public) and return its id."""
    receipt = await contracts.transact(w3, collection, "mint", owner.address, sender=owner)
    (transfer,) = events(collection, "Transfer", receipt)
    return int(transfer["tokenId"])


class TestDynamicCollection:
    """Minting, the events the art reacts to, and ERC-4906 announcements."""

    async def test_deployed(self, collection: AsyncContract, admin: DevSigner) -> None:
        fns = collection.functions
        assert await fns.name().call() == "Dyn"
        assert await fns.publicMint().call() is True
        updater = await fns.UPDATER_ROLE().call()
        assert await fns.hasRole(updater, admin.address).call() is True

    async def test_supports_erc4906(self, collection: AsyncContract) -> None:
        supports = collection.functions.supportsInterface
        assert await supports(bytes.fromhex("49064906")).call() is True  # ERC-4906
        assert await supports(bytes.fromhex("80ac58cd")).call() is True  # ERC-721
        assert await supports(bytes.fromhex("7965db0b")).call() is True  # AccessControl
        assert await supports(bytes.fromhex("ffffffff")).call() is False

    async def test_mint_emits_transfer(
        self, w3: AsyncWeb3[Any], collection: AsyncContract, stranger: DevSigner
    ) -> None:
        receipt = await contracts.transact(
            w3, collection, "mint", stranger.address, sender=stranger
        )
        (transfer,) = events(collection, "Transfer", receipt)
        assert transfer["from"] == "0x0000000000000000000000000000000000000000"
        assert transfer["to"] == stranger.address
        assert transfer["tokenId"] == await collection.functions.totalSupply().call()
        token_uri = await collection.functions.tokenURI(transfer["tokenId"]).call()
        assert token_uri == f"{BASE_URI}{transfer['tokenId']}"

    async def test_mint_round_robin(
        self, w3: AsyncWeb3[Any], collection: AsyncContract, admin: DevSigner
    ) -> None:
        holders = [Account.create().address for _ in range(3)]
        ranges = await contracts.mint_round_robin(
            w3, collection, holders, 10, sender=admin, batch_size=2
        )
        assert [r.holder for r in ranges] == [*holders, *holders][:5]
        assert [r.count for r in ranges] == [2, 2, 2, 2, 2]
        ids = [i for r in ranges for i in range(r.first, r.last + 1)]
        assert ids == list(range(ids[0], ids[0] + 10))
        balances = [await collection.functions.balanceOf(h).call() for h in holders]
        assert balances == [4, 4, 2]
        owner = await collection.functions.ownerOf(ranges[1].last).call()
        assert owner == holders[1]

    async def test_feed_emits_fed_with_amount(
        self, w3: AsyncWeb3[Any], collection: AsyncContract, admin: DevSigner, stranger: DevSigner
    ) -> None:
        token = await new_token(w3, collection, admin)
        before = await w3.eth.get_balance(collection.address)
        receipt = await contracts.transact(
            w3, collection, "feed", token, sender=stranger, value=12345
        )
        assert events(collection, "Fed", receipt) == [
            {"tokenId": token, "by": stranger.address, "amount": 12345}
        ]
        assert await w3.eth.get_balance(collection.address) == before + 12345

    async def test_feed_needs_an_existing_token(
        self, w3: AsyncWeb3[Any], collection: AsyncContract, stranger: DevSigner
    ) -> None:
        with pytest.raises(TransactionReverted) as info:
            await contracts.transact(w3, collection, "feed", 10**9, sender=stranger)
        assert info.value.error == "ERC721NonexistentToken"

    async def test_set_trait_by_owner_only(
        self, w3: AsyncWeb3[Any], collection: AsyncContract, admin: DevSigner, stranger: DevSigner
    ) -> None:
        token = await new_token(w3, collection, stranger)
        receipt = await contracts.transact(
            w3, collection, "setTrait", token, "mood", "sleepy", sender=stranger
        )
        assert events(collection, "TraitSet", receipt) == [
            {"tokenId": token, "key": "mood", "value": "sleepy"}
        ]
        with pytest.raises(TransactionReverted) as info:
            await contracts.transact(w3, collection, "setTrait", token, "mood", "x", sender=admin)
        assert info.value.error == "NotTokenOwner"

    async def test_refresh_metadata(
        self, w3: AsyncWeb3[Any], collection: AsyncContract, admin: DevSigner
    ) -> None:
        one = await contracts.transact(w3, collection, "refreshMetadata", 5, 5, sender=admin)
        assert events(collection, "MetadataUpdate", one) == [{"_tokenId": 5}]
        assert events(collection, "BatchMetadataUpdate", one) == []
        many = await contracts.transact(w3, collection, "refreshMetadata", 1, 10, sender=admin)
        assert events(collection, "BatchMetadataUpdate", many) == [
            {"_fromTokenId": 1, "_toTokenId": 10}
        ]
        with pytest.raises(TransactionReverted) as info:
            await contracts.transact(w3, collection, "refreshMetadata", 10, 1, sender=admin)
        assert info.value.error == "InvalidRange"

    async def test_updater_role_is_enforced(
        self, w3: AsyncWeb3[Any], collection: AsyncContract, admin: DevSigner, stranger: DevSigner
    ) -> None:
        token = await new_token(w3, collection, stranger)
        uri = "ipfs://bafy-rendered-1"
        with pytest.raises(TransactionReverted) as info:
            await contracts.transact(w3, collection, "setTokenURI", token, uri, sender=stranger)
        assert info.value.error == "AccessControlUnauthorizedAccount"
        with pytest.raises(TransactionReverted):
            await contracts.transact(w3, collection, "refreshMetadata", 1, 2, sender=stranger)

        receipt = await contracts.transact(w3, collection, "setTokenURI", token, uri, sender=admin)
        assert events(collection, "MetadataUpdate", receipt) == [{"_tokenId": token}]
        # A token's own URI is complete: not prefixed with the base URI.
        assert await collection.functions.tokenURI(token).call() == uri

    async def test_set_token_uris_in_one_transaction(
        self, w3: AsyncWeb3[Any], collection: AsyncContract, admin: DevSigner
    ) -> None:
        tokens = list(await contracts.mint(w3, collection, admin.address, 3, sender=admin))
        uris = [f"ipfs://bafy-{t}" for t in tokens]
        receipt = await contracts.transact(
            w3, collection, "setTokenURIs", tokens, uris, sender=admin
        )
        updated = [e["_tokenId"] for e in events(collection, "MetadataUpdate", receipt)]
        assert updated == tokens
        assert await collection.functions.tokenURI(tokens[2]).call() == uris[2]
        with pytest.raises(TransactionReverted) as info:
            await contracts.transact(w3, collection, "setTokenURIs", tokens, uris[:2], sender=admin)
        assert info.value.error == "LengthMismatch"

    async def test_set_base_uri_announces_every_token(
        self, w3: AsyncWeb3[Any], collection: AsyncContract, admin: DevSigner, stranger: DevSigner
    ) -> None:
        token = await new_token(w3, collection, stranger)
        with pytest.raises(TransactionReverted):
            await contracts.transact(w3, collection, "setBaseURI", "x://", sender=stranger)
        receipt = await contracts.transact(
            w3, collection, "setBaseURI", "https://v2.example/", sender=admin
        )
        supply = await collection.functions.totalSupply().call()
        assert events(collection, "BatchMetadataUpdate", receipt) == [
            {"_fromTokenId": 1, "_toTokenId": supply}
        ]
        assert await collection.functions.tokenURI(token).call() == f"https://v2.example/{token}"
        await contracts.transact(w3, collection, "setBaseURI", BASE_URI, sender=admin)

    async def test_restricted_mint_and_supply_cap(
        self, w3: AsyncWeb3[Any], admin: DevSigner, stranger: DevSigner
    ) -> None:
        address = await contracts.deploy(
            w3, "DynamicCollection", "Closed", "CLS", "", False, 3, sender=admin
        )
        closed = contracts.at(w3, "DynamicCollection", address)
        with pytest.raises(TransactionReverted) as info:
            await contracts.transact(w3, closed, "mint", stranger.address, sender=stranger)
        assert info.value.error == "AccessControlUnauthorizedAccount"
        assert list(await contracts.mint(w3, closed, stranger.address, 3, sender=admin)) == [
            1,
            2,
            3,
        ]
        with pytest.raises(TransactionReverted) as info:
            await contracts.transact(w3, closed, "mint", admin.address, sender=admin)
        assert info.value.error == "MaxSupplyExceeded"


class TestPriceAggregator:
    """It reads and emits like a Chainlink aggregator."""

    async def test_initial_round(self, aggregator: AsyncContract) -> None:
        fns = aggregator.functions
        assert await fns.decimals().call() == 8
        assert await fns.description().call() == "ETH / USD"
        round_id, answer, started, updated, answered_in = await fns.getRoundData(1).call()
        assert (round_id, answer, answered_in) == (1, ETH_USD, 1)
        assert started == updated > 0

    async def test_update_answer(
        self, w3: AsyncWeb3[Any], aggregator: AsyncContract, admin: DevSigner, stranger: DevSigner
    ) -> None:
        with pytest.raises(TransactionReverted) as info:
            await contracts.transact(w3, aggregator, "updateAnswer", 1, sender=stranger)
        assert info.value.error == "OwnableUnauthorizedAccount"

        price = 3123_45000000
        round_id = await aggregator.functions.latestRound().call() + 1
        receipt = await contracts.transact(w3, aggregator, "updateAnswer", price, sender=admin)
        block = await w3.eth.get_block(receipt["blockNumber"])
        (answer,) = events(aggregator, "AnswerUpdated", receipt)
        (new_round,) = events(aggregator, "NewRound", receipt)
        assert answer == {"current": price, "roundId": round_id, "updatedAt": block["timestamp"]}
        assert new_round == {
            "roundId": round_id,
            "startedBy": admin.address,
            "startedAt": block["timestamp"],
        }

        latest = await aggregator.functions.latestRoundData().call()
        assert latest == [round_id, price, block["timestamp"], block["timestamp"], round_id]
        first = await aggregator.functions.getRoundData(1).call()
        assert first[1] == ETH_USD

    async def test_negative_answers_and_missing_rounds(
        self, w3: AsyncWeb3[Any], aggregator: AsyncContract, admin: DevSigner
    ) -> None:
        receipt = await contracts.transact(w3, aggregator, "updateAnswer", -5, sender=admin)
        (answer,) = events(aggregator, "AnswerUpdated", receipt)
        assert answer["current"] == -5
        with pytest.raises(ContractLogicError):
            await aggregator.functions.getRoundData(10**6).call()


class TestDeploySampleCommand:
    """``dnft deploy-sample`` deploys, mints over the dev accounts and reports as JSON."""

    def test_deploy_sample(
        self, anvil_rpc_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        parser = argparse.ArgumentParser(prog="dnft")
        contracts_command.register(parser.add_subparsers(dest="command"))
        out = tmp_path / "sample.json"
        args = parser.parse_args(
            [
                "deploy-sample",
                "--rpc-url",
                anvil_rpc_url,
                "--mint",
                "7",
                "--holders",
                "3",
                "--out",
                str(out),
            ]
        )
        assert args.func(args) == 0
        report = json.loads(out.read_text())
        assert json.loads(capsys.readouterr().out) == report
        assert report["chain_id"] == 31337
        assert report["minted"] == 7
        holders = [Account.from_key(contracts.anvil_dev_key(i)).address for i in range(3)]
        assert report["holders"] == holders
        assert [m["last"] - m["first"] + 1 for m in report["mints"]] == [3, 3, 1]
        assert report["deploy_block"] <= report["head_block"]
        assert set(report["contracts"]) == {"DynamicCollection", "PriceAggregator"}
