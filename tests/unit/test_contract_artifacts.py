"""The committed contract builds load, match their sources and expose the ABI dnft relies on."""

from __future__ import annotations

import hashlib
import json
from functools import reduce
from importlib.resources import files
from typing import Any

import pytest
from eth_account import Account
from eth_utils.abi import abi_to_signature, function_signature_to_4byte_selector
from eth_utils.crypto import keccak

from dnft import contracts
from dnft.errors import DecodeError, MissingDependencyError

ERC721_INTERFACE_ID = 0x80AC58CD
ERC721_METADATA_INTERFACE_ID = 0x5B5E139F

ERC721_FUNCTIONS = (
    "balanceOf(address)",
    "ownerOf(uint256)",
    "safeTransferFrom(address,address,uint256,bytes)",
    "safeTransferFrom(address,address,uint256)",
    "transferFrom(address,address,uint256)",
    "approve(address,uint256)",
    "setApprovalForAll(address,bool)",
    "getApproved(uint256)",
    "isApprovedForAll(address,address)",
)


def _elements(name: str, kind: str) -> dict[str, dict[str, Any]]:
    """ABI elements of ``kind`` by signature."""
    abi = contracts.load_artifact(name).abi
    return {abi_to_signature(e): dict(e) for e in abi if e.get("type") == kind}


def _declared(kind: str, *signatures: str) -> dict[str, dict[str, Any]]:
    """The collection's ABI elements of ``kind``, each of ``signatures`` checked to be one."""
    elements = _elements("DynamicCollection", kind)
    for signature in signatures:
        assert signature in elements, signature
    return elements


def _interface_id(signatures: tuple[str, ...]) -> int:
    selectors = (int.from_bytes(function_signature_to_4byte_selector(s)) for s in signatures)
    return reduce(lambda a, b: a ^ b, selectors)


def _indexed(event: dict[str, Any]) -> list[bool]:
    return [bool(i["indexed"]) for i in event["inputs"]]


class TestArtifacts:
    """Each build is complete, current and consistent with the ABI copy."""

    @pytest.mark.parametrize("name", contracts.CONTRACT_NAMES)
    def test_loads_with_bytecode(self, name: str) -> None:
        artifact = contracts.load_artifact(name)
        assert artifact.name == name
        assert len(artifact.bytecode) > 1000
        assert len(artifact.deployed_bytecode) > 1000
        assert artifact.compiler.startswith("0.8.")
        assert artifact.settings == {
            "evmVersion": "cancun",
            "optimizer": {"enabled": True, "runs": 200},
        }

    @pytest.mark.parametrize("name", contracts.CONTRACT_NAMES)
    def test_built_from_current_source(self, name: str) -> None:
        """A stale build (source edited, script not rerun) fails here without needing node."""
        artifact = contracts.load_artifact(name)
        assert list(artifact.source_sha256) == [f"schemas/contracts/{name}.sol"]
        source = files("schemas").joinpath("contracts", f"{name}.sol").read_bytes()
        assert artifact.source_sha256[f"schemas/contracts/{name}.sol"] == (
            hashlib.sha256(source).hexdigest()
        )

    @pytest.mark.parametrize("name", contracts.CONTRACT_NAMES)
    def test_abi_copy_matches(self, name: str) -> None:
        abi = json.loads(files("schemas").joinpath("abi", f"{name}.json").read_text())
        assert abi == contracts.load_artifact(name).abi

    def test_unknown_contract_names_the_build_step(self) -> None:
        with pytest.raises(MissingDependencyError, match=r"build_contracts\.mjs"):
            contracts.load_artifact("NoSuchContract")

    def test_rejects_path_like_names(self) -> None:
        with pytest.raises(DecodeError):
            contracts.load_artifact("../abi/DynamicCollection")


class TestDynamicCollectionAbi:
    """The collection's ABI has what the indexer, regenerator and pusher use."""

    def test_functions(self) -> None:
        functions = _declared(
            "function",
            "mint(address)",
            "mintBatch(address,uint256)",
            "setTokenURI(uint256,string)",
            "setTokenURIs(uint256[],string[])",
            "setBaseURI(string)",
            "refreshMetadata(uint256,uint256)",
            "feed(uint256)",
            "setTrait(uint256,string,string)",
            "totalSupply()",
            "tokenURI(uint256)",
            "supportsInterface(bytes4)",
            "MINTER_ROLE()",
            "UPDATER_ROLE()",
            "hasRole(bytes32,address)",
            "grantRole(bytes32,address)",
        )
        assert functions["feed(uint256)"]["stateMutability"] == "payable"
        assert functions["mint(address)"]["outputs"][0]["type"] == "uint256"

    def test_events(self) -> None:
        events = _elements("DynamicCollection", "event")
        assert _indexed(events["Transfer(address,address,uint256)"]) == [True, True, True]
        assert _indexed(events["Fed(uint256,address,uint256)"]) == [True, True, False]
        assert _indexed(events["TraitSet(uint256,string,string)"]) == [True, False, False]
        # ERC-4906 declares both events with no indexed arguments.
        assert _indexed(events["MetadataUpdate(uint256)"]) == [False]
        assert _indexed(events["BatchMetadataUpdate(uint256,uint256)"]) == [False, False]

    def test_erc721_interface_ids(self) -> None:
        """The ABI covers ERC-721 and its metadata extension (ERC-4906 is checked on chain)."""
        functions = _elements("DynamicCollection", "function")
        assert all(s in functions for s in ERC721_FUNCTIONS)
        assert _interface_id(ERC721_FUNCTIONS) == ERC721_INTERFACE_ID
        metadata = ("name()", "symbol()", "tokenURI(uint256)")
        assert _interface_id(metadata) == ERC721_METADATA_INTERFACE_ID

    def test_errors_are_named(self) -> None:
        _declared(
            "error",
            "AccessControlUnauthorizedAccount(address,bytes32)",
            "NotTokenOwner(uint256,address)",
            "InvalidRange(uint256,uint256)",
            "MaxSupplyExceeded(uint256,uint256)",
            "ERC721NonexistentToken(uint256)",
        )


class TestPriceAggregatorAbi:
    """The aggregator is read like a Chainlink feed."""

    def test_aggregator_v3_interface(self) -> None:
        functions = _elements("PriceAggregator", "function")
        round_outputs = ["uint80", "int256", "uint256", "uint256", "uint80"]
        assert [o["type"] for o in functions["latestRoundData()"]["outputs"]] == round_outputs
        assert [o["type"] for o in functions["getRoundData(uint80)"]["outputs"]] == round_outputs
        assert functions["decimals()"]["outputs"][0]["type"] == "uint8"
        assert "description()" in functions
        assert "version()" in functions
        assert "updateAnswer(int256)" in functions

    def test_events_have_chainlink_topics(self) -> None:
        """Same topics as Chainlink's aggregators, so a feed reader cannot tell them apart."""
        events = _elements("PriceAggregator", "event")
        assert _indexed(events["AnswerUpdated(int256,uint256,uint256)"]) == [True, True, False]
        assert _indexed(events["NewRound(uint256,address,uint256)"]) == [True, True, False]
        assert keccak(text="AnswerUpdated(int256,uint256,uint256)").hex() == (
            "0559884fd3a460db3073b7fc896cc77986f16e378210ded43186175bf646fc5f"
        )


class TestDevKeys:
    """The dev keys are anvil's well-known public test keys."""

    def test_first_key_is_derived_from_the_mnemonic(self) -> None:
        assert contracts.anvil_dev_key(0) == contracts.ANVIL_DEV_KEY_0
        address = Account.from_key(contracts.ANVIL_DEV_KEY_0).address
        assert address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"

    def test_second_key(self) -> None:
        address = Account.from_key(contracts.anvil_dev_key(1)).address
        assert address == "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
