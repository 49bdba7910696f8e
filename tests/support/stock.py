"""The stock OpenZeppelin contracts (``schemas/contracts/Stock*.sol``: Wizard-style ERC-721 with
ERC-4906 and ERC-1155 with URI storage, nothing written for dnft) deployed on a real chain, and
the calls tests make on them. Deployed and owned by anvil's first dev account."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.types import TxReceipt

from dnft.contracts import DevSigner, at, deploy, transact

REPO = Path(__file__).resolve().parents[2]
STOCK_ERC721_ABI = str(REPO / "schemas" / "abi" / "StockERC721.json")
STOCK_ERC1155_ABI = str(REPO / "schemas" / "abi" / "StockERC1155.json")


@dataclass
class StockContract:
    """One deployed stock contract (``Deployed`` for the test configs: rpc_url, chain_id,
    address) and its owner's signer."""

    name: str  # StockERC721 | StockERC1155
    rpc_url: str
    w3: AsyncWeb3[Any]
    signer: DevSigner
    address: str
    contract: Any
    chain_id: int

    @property
    def owner(self) -> str:
        return str(self.signer.address)

    async def call(self, fn: str, *args: Any, sender: DevSigner | None = None) -> TxReceipt:
        """Send ``fn(*args)`` (from the owner unless ``sender``) and wait for its receipt."""
        return await transact(self.w3, self.contract, fn, *args, sender=sender or self.signer)

    async def block_number(self) -> int:
        return int(await self.w3.eth.block_number)


async def deploy_stock(rpc_url: str, name: str) -> StockContract:
    """Deploy ``StockERC721`` or ``StockERC1155`` owned by anvil's first dev account."""
    w3 = AsyncWeb3(AsyncHTTPProvider(rpc_url))
    signer = DevSigner()
    address = await deploy(w3, name, signer.address, sender=signer)
    return StockContract(
        name, rpc_url, w3, signer, address, at(w3, name, address), int(await w3.eth.chain_id)
    )
