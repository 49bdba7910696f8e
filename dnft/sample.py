"""The sample collection on a dev chain, for tests and the demo: a public-mint
DynamicCollection and an "ETH / USD" PriceAggregator deployed from anvil's first dev account,
tokens minted round-robin to the first dev accounts."""

from __future__ import annotations

from typing import Any

from dnft.errors import ServiceError

# The sample feed mirrors Chainlink's ETH / USD: 8 decimals, starting at 3000 USD.
_FEED_DECIMALS = 8
_FEED_DESCRIPTION = "ETH / USD"
_FEED_INITIAL_ANSWER = 3000 * 10**_FEED_DECIMALS
_COLLECTION_ARGS = ("dnft Sample", "DNFTS", "http://127.0.0.1:8000/tokens/", True, 0)


async def deploy_sample(rpc_url: str, *, mint: int = 0, holders: int = 1) -> dict[str, Any]:
    """Deploy both sample contracts, mint, and return the JSON-ready report.

    Waits for every transaction. Raises ``ServiceError`` when the node fails,
    ``TransactionReverted`` when a transaction reverts.
    """
    # Imported here: web3 and eth_account cost ~1 s, which every other dnft command skips.
    import aiohttp
    from eth_account import Account
    from web3 import AsyncHTTPProvider, AsyncWeb3
    from web3.exceptions import Web3Exception

    from dnft import contracts

    w3 = AsyncWeb3(AsyncHTTPProvider(rpc_url))
    try:
        try:
            chain_id = await w3.eth.chain_id
        except (Web3Exception, aiohttp.ClientError, OSError) as exc:
            raise ServiceError(f"no JSON-RPC node at {rpc_url}: {exc}") from exc
        signer = contracts.DevSigner()
        collection_address, receipt = await contracts.deploy_with_receipt(
            w3, "DynamicCollection", *_COLLECTION_ARGS, sender=signer
        )
        feed_address = await contracts.deploy(
            w3,
            "PriceAggregator",
            _FEED_DECIMALS,
            _FEED_DESCRIPTION,
            _FEED_INITIAL_ANSWER,
            sender=signer,
        )
        owners = [Account.from_key(contracts.anvil_dev_key(i)).address for i in range(holders)]
        collection = contracts.at(w3, "DynamicCollection", collection_address)
        minted = await contracts.mint_round_robin(w3, collection, owners, mint, sender=signer)
        head = await w3.eth.block_number
    finally:
        await w3.provider.disconnect()
    return {
        "chain_id": chain_id,
        "deploy_block": receipt["blockNumber"],
        "head_block": head,
        "deployer": signer.address,
        "contracts": {"DynamicCollection": collection_address, "PriceAggregator": feed_address},
        "minted": mint,
        "holders": owners,
        "mints": [{"holder": r.holder, "first": r.first, "last": r.last} for r in minted],
    }
