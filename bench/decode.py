"""Benchmark: indexer.decode.EventDecoder vs web3.py's ``process_log`` on the same raw logs.

Builds 200k synthetic ERC-20 Transfer logs (raw JSON-RPC dicts, as ``eth_getLogs`` returns
them) plus string-carrying logs, decodes them with both, checks both agree on a sample,
and prints logs/s and ``ratio_vs_web3=``.

web3.py runs at a few thousand logs/s, so by default it decodes the first ``--web3-n`` logs
of the same list (its rate is per log, so the ratio holds); ``--web3-n 0`` runs it on all.

    .venv/bin/python -m bench.decode [--n 200000] [--strings 20000] [--web3-n 20000]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from eth_abi.abi import encode
from eth_utils.crypto import keccak
from web3 import Web3

from indexer.decode import EventDecoder

TRANSFER = {
    "type": "event",
    "name": "Transfer",
    "anonymous": False,
    "inputs": [
        {"name": "from", "type": "address", "indexed": True},
        {"name": "to", "type": "address", "indexed": True},
        {"name": "value", "type": "uint256", "indexed": False},
    ],
}
RENAMED = {
    "type": "event",
    "name": "Renamed",
    "anonymous": False,
    "inputs": [
        {"name": "tokenId", "type": "uint256", "indexed": True},
        {"name": "name", "type": "string", "indexed": False},
        {"name": "level", "type": "uint8", "indexed": False},
    ],
}


def _meta(rng: random.Random, i: int) -> dict[str, Any]:
    block = 18_000_000 + i // 50
    return {
        "address": "0x" + "5a" * 20,
        "blockNumber": hex(block),
        "blockHash": f"0x{block:064x}",
        "transactionHash": "0x" + rng.randbytes(32).hex(),
        "transactionIndex": hex(i % 50),
        "logIndex": hex(i % 50),
        "removed": False,
    }


def transfer_logs(n: int, rng: random.Random) -> list[dict[str, Any]]:
    topic0 = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
    return [
        {
            **_meta(rng, i),
            "topics": [
                topic0,
                "0x" + "00" * 12 + rng.randbytes(20).hex(),
                "0x" + "00" * 12 + rng.randbytes(20).hex(),
            ],
            "data": "0x" + rng.getrandbits(rng.choice((64, 128, 256))).to_bytes(32, "big").hex(),
        }
        for i in range(n)
    ]


def renamed_logs(n: int, rng: random.Random) -> list[dict[str, Any]]:
    topic0 = "0x" + keccak(text="Renamed(uint256,string,uint8)").hex()
    return [
        {
            **_meta(rng, i),
            "topics": [topic0, "0x" + i.to_bytes(32, "big").hex()],
            "data": "0x"
            + encode(["string", "uint8"], [f"Dragon #{i} ✦ level {i % 100}", i % 256]).hex(),
        }
        for i in range(n)
    ]


def rate(decode: Callable[[Any], Any], logs: list[dict[str, Any]]) -> tuple[float, list[Any]]:
    started = time.perf_counter()
    out = [decode(log) for log in logs]
    return len(logs) / (time.perf_counter() - started), out


def normalise(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalise(v) for v in value]
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return value.lower()
    return value


def run(name: str, event: dict[str, Any], logs: list[dict[str, Any]], web3_n: int) -> float:
    decoder = EventDecoder.from_abi([event])
    ours_rate, ours = rate(decoder.decode, logs)
    process_log = getattr(Web3().eth.contract(abi=[event]).events, event["name"])().process_log
    sample = logs if web3_n <= 0 else logs[:web3_n]
    web3_rate, theirs = rate(process_log, sample)
    for mine, their in zip(ours, theirs, strict=False):
        assert mine.args == normalise(their["args"]), (mine, their)
    ratio = ours_rate / web3_rate
    print(
        f"{name}: n={len(logs)} dnft={ours_rate:,.0f} logs/s "
        f"web3={web3_rate:,.0f} logs/s (on {len(sample)}) ratio_vs_web3={ratio:.1f}"
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=200_000, help="Transfer logs")
    parser.add_argument("--strings", type=int, default=20_000, help="logs with string data")
    parser.add_argument("--web3-n", type=int, default=20_000, help="logs web3 decodes; 0=all")
    args = parser.parse_args()
    rng = random.Random(42)
    ratio = run("transfer", TRANSFER, transfer_logs(args.n, rng), args.web3_n)
    run("string", RENAMED, renamed_logs(args.strings, rng), args.web3_n)
    print(f"ratio_vs_web3={ratio:.1f} (Transfer fast path; target >= 20)")


if __name__ == "__main__":
    main()
