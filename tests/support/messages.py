"""Hand-built messages of each schema (chain events, retractions, observations) for a contract
at CONTRACT on chain 31337: what the indexer and the oracle would publish."""

from __future__ import annotations

from typing import Any

CONTRACT = "0x" + "c0" * 20


def event(n: int, name: str, token: int, **args: Any) -> dict[str, Any]:
    return {
        "schema": "dnft.chain.event.v1",
        "event_id": f"31337:0x{n:064x}:0",
        "chain_id": 31337,
        "network": "local",
        "contract": CONTRACT,
        "event": name,
        "args": args,
        "token_id": str(token),
        "block_number": n,
        "block_hash": f"0x{n:064x}",
        "block_timestamp": 1_700_000_000 + n,
        "tx_hash": f"0x{n:064x}",
        "log_index": 0,
        "removed": False,
    }


def retraction(n: int, token: int) -> dict[str, Any]:
    return {
        "schema": "dnft.chain.retraction.v1",
        "event_id": f"31337:0x{n:064x}:0",
        "chain_id": 31337,
        "network": "local",
        "contract": CONTRACT,
        "event": "Fed",
        "token_id": str(token),
        "block_number": n,
        "block_hash": f"0x{n:064x}",
        "removed": True,
    }


def observation(round_id: int, value: str) -> dict[str, Any]:
    return {
        "schema": "dnft.oracle.observation.v1",
        "feed_id": "eth-usd",
        "value": value,
        "observed_at": "2026-11-22T10:00:00+00:00",
        "published_at": "2026-11-22T10:00:01+00:00",
        "round_id": round_id,
        "sources": [{"source": "a", "value": value, "response_sha256": "0" * 64}],
    }
