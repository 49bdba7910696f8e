"""Deploy and drive dnft's sample contracts on a local dev chain (anvil).

Dev and test plumbing only: the keys here are anvil's public test keys. Artifacts are the
committed build output of ``scripts/build_contracts.mjs`` (``schemas/contracts/build/``), so
nothing here needs a compiler.

Transactions are signed locally and numbered by a local nonce (``DevSigner``): asking the
node for a nonce per transaction is slower and races when several are in flight.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any, Final, cast

import aiohttp
from eth_account import Account
from eth_account.hdaccount import key_from_seed, seed_from_mnemonic
from eth_account.signers.local import LocalAccount
from eth_typing import ABI, ChecksumAddress, HexStr
from eth_utils.abi import abi_to_signature, function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from web3 import AsyncWeb3
from web3.contract import AsyncContract
from web3.exceptions import ContractLogicError, TimeExhausted, Web3Exception
from web3.types import Nonce, TxParams, TxReceipt, Wei

from dnft.errors import DecodeError, DnftError, MissingDependencyError, ServiceError

__all__ = [
    "ANVIL_DEV_KEY_0",
    "ANVIL_MNEMONIC",
    "CONTRACT_NAMES",
    "Artifact",
    "DevSigner",
    "MintRange",
    "TransactionReverted",
    "anvil_dev_key",
    "at",
    "deploy",
    "deploy_with_receipt",
    "load_artifact",
    "mint",
    "mint_round_robin",
    "transact",
]

#: anvil's default mnemonic: public, documented test data that funds every dev account.
ANVIL_MNEMONIC: Final = "test test test test test test test test test test test junk"
#: Private key of anvil's first dev account (0xf39F...2266), derived from ANVIL_MNEMONIC.
#: A PUBLIC TEST KEY: anyone can spend from it on any chain, so it must only sign on dev chains.
ANVIL_DEV_KEY_0: Final = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"

#: The contracts that ``scripts/build_contracts.mjs`` builds: the samples, then two stock
#: OpenZeppelin ones (Wizard-style ERC-721 and ERC-1155) that tests use as a studio's own.
CONTRACT_NAMES: Final = ("DynamicCollection", "PriceAggregator", "StockERC721", "StockERC1155")

# Fee policy for dev chains. Full blocks raise the base fee 12.5% per block, and anvil drops
# underpriced transactions from its pool without an error, so the cap is far above the current
# base fee; only base fee + tip is charged, so a high cap costs nothing.
_BASE_FEE_HEADROOM: Final = 4  # survives about 11 consecutive full blocks
_MIN_MAX_FEE: Final = Wei(10 * 10**9)
_PRIORITY_FEE: Final = Wei(10**9)
# Estimates are exact for the state they ran on; the margin covers small state changes
# (a first mint writes fresh slots) between estimate and inclusion. Unused gas is not charged.
_GAS_MARGIN: Final = 1.2
# At about 27k gas per token, 500 tokens (~14M gas) fit in anvil's 30M-gas blocks with room.
DEFAULT_MINT_BATCH: Final = 500

_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class Artifact:
    """One compiled contract, as committed under ``schemas/contracts/build/``."""

    name: str
    abi: ABI
    bytecode: HexStr
    deployed_bytecode: HexStr
    compiler: str
    settings: Mapping[str, Any]
    #: sha256 of each of our source files it was built from, by repo-relative path.
    source_sha256: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class MintRange:
    """Token ids ``first..last`` (inclusive) minted to ``holder`` in one transaction."""

    holder: ChecksumAddress
    first: int
    last: int

    @property
    def count(self) -> int:
        return self.last - self.first + 1


class TransactionReverted(DnftError, RuntimeError):
    """A transaction reverted (at estimation or on chain).

    ``error`` is the Solidity custom error's name when the revert data matches one of the
    sample contracts' errors (e.g. ``AccessControlUnauthorizedAccount``), else ``None``;
    ``data`` is the raw revert data, when the node returned any.
    """

    def __init__(self, message: str, *, error: str | None = None, data: str | None = None) -> None:
        self.error = error
        self.data = data
        super().__init__(message)


@cache
def load_artifact(name: str) -> Artifact:
    """Load the committed build of contract ``name`` (cached; reads a package file only).

    Raises ``MissingDependencyError`` when there is no such build, ``DecodeError`` when the
    file does not have the artifact's shape.
    """
    if not _NAME_RE.fullmatch(name):
        raise DecodeError(f"not a contract name: {name!r}")
    resource = files("schemas").joinpath("contracts", "build", f"{name}.json")
    try:
        raw = json.loads(resource.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MissingDependencyError(
            f"no build of contract {name!r} in schemas/contracts/build/; "
            "run `node scripts/build_contracts.mjs` (after `npm ci`)"
        ) from None
    try:
        return Artifact(
            name=str(raw["contractName"]),
            abi=cast(ABI, list(raw["abi"])),
            bytecode=_hex(raw["bytecode"], "bytecode"),
            deployed_bytecode=_hex(raw["deployedBytecode"], "deployedBytecode"),
            compiler=str(raw["compiler"]),
            settings=dict(raw["settings"]),
            source_sha256={str(k): str(v) for k, v in raw["sourceSha256"].items()},
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise DecodeError(f"artifact {name!r} is malformed: {exc!r}") from exc


def _hex(value: object, key: str) -> HexStr:
    if not isinstance(value, str) or not value.startswith("0x") or len(value) < 4:
        raise DecodeError(f"artifact field {key!r} is not non-empty 0x-hex")
    return HexStr(value)


def anvil_dev_key(index: int) -> str:
    """Private key (0x-hex) of anvil's dev account ``index``, derived from ANVIL_MNEMONIC.

    Public test keys, like ANVIL_DEV_KEY_0. The first call blocks for about 40 ms (PBKDF2).
    """
    if index < 0:
        raise ValueError(f"account index must be >= 0, got {index}")
    return "0x" + key_from_seed(_anvil_seed(), f"m/44'/60'/0'/0/{index}").hex()


@cache
def _anvil_seed() -> bytes:
    return seed_from_mnemonic(ANVIL_MNEMONIC, "")


class DevSigner:
    """Signs and sends transactions from one key, numbering them with a local nonce.

    Use one signer per key, chain and event loop (its lock binds to one loop): the nonce is
    read from the node once, then counted locally, and sends are serialized so nonces reach
    the node in order. After a failed send the nonce is re-read from the node.
    """

    def __init__(self, private_key: str = ANVIL_DEV_KEY_0) -> None:
        self._account: LocalAccount = Account.from_key(private_key)
        self._nonce: int | None = None
        self._chain_id: int | None = None
        self._lock = asyncio.Lock()

    @property
    def address(self) -> ChecksumAddress:
        return self._account.address

    async def send(self, w3: AsyncWeb3[Any], tx: TxParams) -> HexBytes:
        """Fill in gas, fees, nonce and chain id, sign, send; return the hash without waiting.

        Raises ``TransactionReverted`` if gas estimation reverts, ``ServiceError`` if the
        node fails or rejects the transaction.
        """
        async with self._lock:
            try:
                filled = await self._fill(w3, tx)
                signed = self._account.sign_transaction(cast(dict[str, Any], filled))
                tx_hash = await w3.eth.send_raw_transaction(signed.raw_transaction)
            except ContractLogicError as exc:
                raise _reverted(exc) from exc
            except (Web3Exception, aiohttp.ClientError, OSError) as exc:
                self._nonce = None  # the node may or may not have taken it: ask again
                raise ServiceError(
                    f"sending transaction from {self.address} failed: {exc}"
                ) from exc
            self._nonce = cast(int, filled["nonce"]) + 1
            return tx_hash

    async def transact(
        self, w3: AsyncWeb3[Any], tx: TxParams, *, wait_s: float = 60.0
    ) -> TxReceipt:
        """``send``, then wait for the receipt; raise ``TransactionReverted`` on status 0.

        Waits until the transaction is mined, so with automatic mining off the caller must
        mine. Raises ``ServiceError`` if no receipt arrives within ``wait_s`` seconds.
        """
        tx_hash = await self.send(w3, tx)
        try:
            receipt = await w3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=wait_s, poll_latency=0.02
            )
        except TimeExhausted as exc:
            raise ServiceError(f"no receipt for {tx_hash.to_0x_hex()} in {wait_s} s") from exc
        except (Web3Exception, aiohttp.ClientError, OSError) as exc:
            raise ServiceError(f"waiting for {tx_hash.to_0x_hex()} failed: {exc}") from exc
        if receipt["status"] != 1:
            raise TransactionReverted(f"transaction {tx_hash.to_0x_hex()} reverted on chain")
        return receipt

    async def _fill(self, w3: AsyncWeb3[Any], tx: TxParams) -> TxParams:
        filled: TxParams = {"from": self.address, "value": Wei(0), **tx}
        if self._chain_id is None:
            self._chain_id = await w3.eth.chain_id
        if self._nonce is None:
            self._nonce = await w3.eth.get_transaction_count(self.address, "pending")
        filled["chainId"] = self._chain_id
        filled["nonce"] = Nonce(self._nonce)
        if "gas" not in filled:
            estimate = await w3.eth.estimate_gas(filled)
            filled["gas"] = math.ceil(estimate * _GAS_MARGIN)
        if "maxFeePerGas" not in filled:
            block = await w3.eth.get_block("latest")
            base_fee = int(block.get("baseFeePerGas", 0))
            filled["maxFeePerGas"] = Wei(
                max(_BASE_FEE_HEADROOM * base_fee, _MIN_MAX_FEE) + _PRIORITY_FEE
            )
            filled["maxPriorityFeePerGas"] = _PRIORITY_FEE
        filled["type"] = 2
        filled.pop("from")  # the signature says who sends
        return filled


def at(w3: AsyncWeb3[Any], name: str, address: str) -> AsyncContract:
    """A web3 contract object for the deployed sample contract ``name`` at ``address``."""
    artifact = load_artifact(name)
    return w3.eth.contract(address=to_checksum_address(address), abi=artifact.abi)


async def transact(
    w3: AsyncWeb3[Any],
    contract: AsyncContract,
    fn_name: str,
    *args: Any,
    sender: DevSigner,
    value: int = 0,
) -> TxReceipt:
    """Send ``contract.fn_name(*args)`` from ``sender`` (with ``value`` wei) and wait for it.

    Raises what ``DevSigner.transact`` raises.
    """
    data = contract.encode_abi(fn_name, args=list(args))
    return await sender.transact(w3, {"to": contract.address, "data": data, "value": Wei(value)})


async def deploy(w3: AsyncWeb3[Any], name: str, *args: Any, sender: DevSigner) -> ChecksumAddress:
    """Deploy sample contract ``name`` with constructor ``args``; wait until it is mined.

    Returns its address. Raises what ``DevSigner.transact`` raises.
    """
    address, _ = await deploy_with_receipt(w3, name, *args, sender=sender)
    return address


async def deploy_with_receipt(
    w3: AsyncWeb3[Any], name: str, *args: Any, sender: DevSigner
) -> tuple[ChecksumAddress, TxReceipt]:
    """``deploy``, also returning the receipt (its ``blockNumber`` is where indexing starts)."""
    artifact = load_artifact(name)
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    data = factory.constructor(*args).data_in_transaction
    receipt = await sender.transact(w3, {"data": data})
    address = receipt["contractAddress"]
    if address is None:
        raise ServiceError(f"deploying {name}: receipt has no contract address")
    return address, receipt


async def mint(
    w3: AsyncWeb3[Any],
    collection: AsyncContract,
    to: str,
    count: int,
    *,
    sender: DevSigner,
    batch_size: int = DEFAULT_MINT_BATCH,
) -> range:
    """Mint ``count`` consecutive tokens of a DynamicCollection to ``to``.

    Sends one ``mintBatch`` per ``batch_size`` tokens, one after another, waiting for each.
    Returns the minted ids. Raises what ``DevSigner.transact`` raises.
    """
    ranges = await mint_round_robin(
        w3, collection, [to], count, sender=sender, batch_size=batch_size
    )
    return range(ranges[0].first, ranges[-1].last + 1) if ranges else range(0)


async def mint_round_robin(
    w3: AsyncWeb3[Any],
    collection: AsyncContract,
    holders: Sequence[str],
    count: int,
    *,
    sender: DevSigner,
    batch_size: int = DEFAULT_MINT_BATCH,
) -> list[MintRange]:
    """Mint ``count`` tokens spread over ``holders``, in turn, in ranges of consecutive ids.

    Per-token round-robin would need a transaction per token; instead each turn mints one
    range of at most ``batch_size`` ids (and at most an equal share), so every holder owns
    interleaved ranges and the counts differ by at most one range. Waits for each
    transaction. Raises what ``DevSigner.transact`` raises.
    """
    if count < 0 or batch_size < 1:
        raise ValueError(f"need count >= 0 and batch_size >= 1, got {count}, {batch_size}")
    if not holders:
        raise ValueError("need at least one holder")
    owners = [to_checksum_address(h) for h in holders]
    share = min(batch_size, math.ceil(count / len(owners))) if count else 0
    minted: list[MintRange] = []
    remaining = count
    turn = 0
    while remaining > 0:
        holder = owners[turn % len(owners)]
        n = min(share, remaining)
        receipt = await transact(w3, collection, "mintBatch", holder, n, sender=sender)
        first, last = _minted_ids(receipt, collection.address)
        if last - first + 1 != n:
            raise DecodeError(f"mintBatch of {n} emitted ids {first}..{last}")
        minted.append(MintRange(holder=holder, first=first, last=last))
        remaining -= n
        turn += 1
    return minted


# keccak("Transfer(address,address,uint256)"); decoded by hand because web3's log decoding
# costs about 0.25 ms per log, which is most of a 500-token mint.
_TRANSFER_TOPIC: Final = HexBytes(
    "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
)


def _minted_ids(receipt: TxReceipt, collection: ChecksumAddress) -> tuple[int, int]:
    ids = [
        int.from_bytes(log["topics"][3], "big")
        for log in receipt["logs"]
        if log["address"] == collection
        and len(log["topics"]) == 4
        and log["topics"][0] == _TRANSFER_TOPIC
    ]
    if not ids:
        raise DecodeError("mint receipt has no Transfer log")
    return min(ids), max(ids)


@cache
def _error_names() -> Mapping[bytes, str]:
    """Selector -> name of every custom error in the sample contracts' ABIs."""
    names: dict[bytes, str] = {}
    for contract in CONTRACT_NAMES:
        for element in _errors_of(load_artifact(contract).abi):
            signature = abi_to_signature(element)
            names[function_signature_to_4byte_selector(signature)] = str(element["name"])
    return names


def _errors_of(abi: ABI) -> Iterable[Any]:
    return (element for element in abi if element.get("type") == "error")


def _reverted(exc: ContractLogicError) -> TransactionReverted:
    data = exc.data if isinstance(exc.data, str) else None
    error = None
    if data is not None and len(data) >= 10:
        error = _error_names().get(bytes.fromhex(data[2:10]))
    detail = error or exc.message or "no reason"
    return TransactionReverted(f"transaction reverted: {detail}", error=error, data=data)
