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

from dnft.errors import ConfigError
from dnft.sample import deploy_sample


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
