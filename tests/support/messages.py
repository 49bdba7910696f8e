"""Hand-built messages of each schema (chain events, retractions, observations) for a contract
at CONTRACT on chain 31337: what the indexer and the oracle would publish, as the JSON
objects produced to Kafka; :func:`typed` turns one into the typed message a consumer decodes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from dnft.messages import (
    ChainEvent,
    ChainRetraction,
    Message,
    OracleObservation,
    RenderJob,
    decode_message,
)

CONTRACT = "0x" + "c0" * 20


def _on_chain(n: int, token: int, event: str) -> dict[str, Any]:
    """What an event and its retraction share: the log at block ``n``, naming ``token``."""
    block_hash = f"0x{n:064x}"
    return {
        "event_id": f"31337:{block_hash}:0",
        "chain_id": 31337,
        "network": "local",
        "contract": CONTRACT,
        "event": event,
        "token_id": str(token),
        "block_number": n,
        "block_hash": block_hash,
    }


def event(n: int, name: str, token: int, **args: Any) -> dict[str, Any]:
    """Event ``name`` of ``token`` with ``args``, alone in block ``n`` (its own tx)."""
    return {
        "schema": "dnft.chain.event.v1",
        **_on_chain(n, token, name),
        "args": args,
        "block_timestamp": 1_700_000_000 + n,
        "tx_hash": f"0x{n:064x}",
        "log_index": 0,
        "removed": False,
    }


def retraction(n: int, token: int) -> dict[str, Any]:
    """The retraction of :func:`event` ``n`` (a ``Fed`` of ``token``) by a reorg."""
    return {"schema": "dnft.chain.retraction.v1", **_on_chain(n, token, "Fed"), "removed": True}


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


def typed(message: dict[str, Any]) -> Message:
    """A built (or read back) message as the typed value a consumer's decode step makes of it
    (``dnft.messages.decode_message`` of its JSON), without the ``_key`` / ``_partition``
    annotations ``tests.support.chain.read_topic`` adds. Raises DecodeError when invalid."""
    body = {k: v for k, v in message.items() if not k.startswith("_")}
    return decode_message(orjson.dumps(body))


def chain_inputs(
    messages: Iterable[dict[str, Any]],
) -> list[ChainEvent | ChainRetraction | OracleObservation]:
    """What the planner takes: each message typed (events, retractions, observations only)."""
    out: list[ChainEvent | ChainRetraction | OracleObservation] = []
    for m in messages:
        value = typed(m)
        assert isinstance(value, ChainEvent | ChainRetraction | OracleObservation), value
        out.append(value)
    return out


def render_jobs(messages: Iterable[dict[str, Any]]) -> list[RenderJob]:
    """What the render worker takes: each render job typed (e.g. as read back from Kafka)."""
    out: list[RenderJob] = []
    for m in messages:
        value = typed(m)
        assert isinstance(value, RenderJob), value
        out.append(value)
    return out
