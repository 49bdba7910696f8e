"""``dnft deploy-sample``: put the sample contracts on a dev chain for tests and the demo.

Deploys DynamicCollection (public mint) and PriceAggregator (ETH / USD, 8 decimals, 3000) from
anvil's first dev account, mints N tokens over the first K dev accounts in ranges taken in
turn, and prints the addresses, chain id and deploy block as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from dnft.cli.console import Commands, add_command
from dnft.errors import ConfigError
from dnft.sample import deploy_sample


def register(subparsers: Commands) -> None:
    """Add the ``deploy-sample`` command."""
    parser = add_command(subparsers, "deploy-sample", __doc__, _run)
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
