"""Hand-built messages of each schema (chain events, retractions, observations, render jobs,
metadata updates) for a contract at CONTRACT on chain 31337: what the indexer, the oracle and the
regenerator would publish, as the JSON objects produced to Kafka; :func:`typed` turns one
into the typed message a consumer decodes."""

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


def metadata_update(**changes: Any) -> dict[str, Any]:
    """A ``dnft.metadata.update.v1`` of token 7, version 2, with ``changes``."""
    body = {
        "schema": "dnft.metadata.update.v1",
        "collection": "sample",
        "chain_id": 31337,
        "contract": "0x" + "ab" * 20,
        "token_id": "7",
        "version": 2,
        "metadata_uri": "http://127.0.0.1:8000/tokens/7/versions/2",
        "metadata_sha256": "a" * 64,
        "metadata_cid": "bafkreiabc",
        "image_sha256": "b" * 64,
        "created_at": "2026-11-22T10:00:00+00:00",
    }
    return {**body, **changes}


def render_job(**changes: Any) -> dict[str, Any]:
    """A ``dnft.render.job.v1`` of token 7, with ``changes``."""
    body = {
        "schema": "dnft.render.job.v1",
        "job_id": "job-1",
        "collection": "sample",
        "chain_id": 31337,
        "contract": "0x" + "ab" * 20,
        "token_id": "7",
        "state_hash": "a" * 64,
        "seed": 3,
        "triggered_by": ["31337:0x01:0", "feed:eth-usd"],
        "planned_at": "2026-11-22T10:00:00+00:00",
    }
    return {**body, **changes}


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
