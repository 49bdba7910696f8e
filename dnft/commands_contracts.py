"""``dnft deploy-sample``: put the sample contracts on a dev chain for tests and the demo.

Deploys a public-mint DynamicCollection and an "ETH / USD" PriceAggregator from anvil's first
dev account, optionally mints tokens to the first dev accounts, and reports where they are.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from dnft.errors import ConfigError, ServiceError

# The sample feed mirrors Chainlink's ETH / USD: 8 decimals, starting at 3000 USD.
_FEED_DECIMALS = 8
_FEED_DESCRIPTION = "ETH / USD"
_FEED_INITIAL_ANSWER = 3000 * 10**_FEED_DECIMALS
_COLLECTION_ARGS = ("dnft Sample", "DNFTS", "http://127.0.0.1:8000/tokens/", True, 0)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``deploy-sample`` command."""
    parser = subparsers.add_parser(
        "deploy-sample",
        help="deploy the sample collection and price feed to a dev chain (anvil)",
        description=(
            "Deploy DynamicCollection (public mint) and PriceAggregator (ETH / USD, 8 decimals, "
            "3000) from anvil's first dev account, mint N tokens over the first K dev accounts "
            "in ranges taken in turn, and print the addresses, chain id and deploy block as JSON."
        ),
    )
    parser.add_argument("--rpc-url", required=True, help="HTTP JSON-RPC URL of the dev chain")
    parser.add_argument(
        "--mint", type=int, default=0, metavar="N", help="tokens to mint (default: 0)"
    )
    parser.add_argument(
        "--holders",
        type=int,
        default=1,
        metavar="K",
        help="spread the tokens over anvil's first K dev accounts (default: 1)",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON to FILE")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.mint < 0:
        raise ConfigError("--mint", f"must be >= 0, got {args.mint}")
    if args.holders < 1:
        raise ConfigError("--holders", f"must be >= 1, got {args.holders}")
    report = asyncio.run(deploy_sample(args.rpc_url, mint=args.mint, holders=args.holders))
    text = json.dumps(report, indent=2, sort_keys=True) + "\n"
    sys.stdout.write(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    return 0


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
