"""ABI event entries and raw logs for decoder tests, and web3.py's decoded values in dnft's
conventions (to compare dnft's decoder with web3.py's ``process_log`` on the same logs)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from web3 import Web3

from dnft.rpc import RawLog


def event_abi(name: str, *inputs: tuple[str, str, bool], **extra: Any) -> dict[str, Any]:
    """An ABI event entry from (name, type, indexed) triples; ``extra`` adds keys."""
    return {
        "type": "event",
        "name": name,
        "anonymous": False,
        "inputs": [{"name": n, "type": t, "indexed": i} for n, t, i in inputs],
        **extra,
    }


TRANSFER = event_abi(
    "Transfer", ("from", "address", True), ("to", "address", True), ("value", "uint256", False)
)


def make_log(topics: list[Any], data: bytes | str, **overrides: Any) -> RawLog:
    """A raw log (as ``eth_getLogs`` returns one) with ``topics`` and ``data`` (bytes are
    hex-encoded), at fixed coordinates unless ``overrides`` says otherwise."""
    log: dict[str, Any] = {
        "address": "0x" + "Ab" * 20,
        "topics": topics,
        "data": data if isinstance(data, str) else "0x" + data.hex(),
        "blockNumber": "0x1b4",
        "blockHash": "0x" + "11" * 32,
        "transactionHash": "0x" + "22" * 32,
        "transactionIndex": "0x3",
        "logIndex": "0x7",
        "removed": False,
    }
    log.update(overrides)
    return cast(RawLog, log)


def normalise_web3(value: Any) -> Any:
    """web3.py's output in our conventions: lowercase addresses, 0x hex bytes, lists, dicts."""
    if isinstance(value, Mapping):  # web3's AttributeDict is a Mapping, not a dict
        return {k: normalise_web3(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalise_web3(v) for v in value]
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, str) and Web3.is_checksum_address(value):
        return value.lower()
    return value
