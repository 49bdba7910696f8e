"""dnft's Kafka messages as frozen typed values, one class per schema in ``schemas/messages``.

A consumer's decode step (:func:`dnft.stream.message_decoder`) turns each record into one of
these: JSON, then the message's own JSON Schema, then the typed value, converting numbers and
times once. Whatever fails any of the three raises :class:`~dnft.errors.DecodeError` naming
what is wrong, and the stream sends the record to the dead-letter topic. Past the decode step
no code reads a message as a ``dict``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypeVar, get_args

import orjson

from dnft.errors import DecodeError
from dnft.validation import validate_message
from schemas import (
    CHAIN_EVENT_V1,
    CHAIN_RETRACTION_V1,
    METADATA_UPDATE_V1,
    ORACLE_OBSERVATION_V1,
    RENDER_JOB_V1,
)

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_T = TypeVar("_T", bound="DataclassInstance")

# How final a chain event's block was when the indexer published it, weakest first: ``head``
# (above the network's final block: a reorg may still replace it), ``safe`` (at or below the
# node's ``safe`` block), ``finalized`` (at or below the node's ``finalized`` block, or the
# configured ``confirmations.depth`` below the head: dnft's own policy of final).
Finality: TypeAlias = Literal["head", "safe", "finalized"]
FINALITY_ORDER: tuple[Finality, ...] = get_args(Finality)


def finality_of(block_number: int, final_block: int | None, label: Finality) -> Finality:
    """How final block ``block_number`` is, given the network's final block (None: every block
    handed over is final, as in a backfill, which stops at the final block) and the policy's
    label for final blocks (``safe`` or ``finalized``)."""
    if final_block is None or block_number <= final_block:
        return label
    return "head"


def at_least(finality: Finality | None, required: Finality) -> bool:
    """Whether ``finality`` is ``required`` or more final; unknown (None) never is."""
    if finality is None:
        return False
    return FINALITY_ORDER.index(finality) >= FINALITY_ORDER.index(required)


@dataclass(frozen=True, slots=True)
class ChainEvent:
    """``dnft.chain.event.v1``: a contract event from the canonical chain. ``args`` are as the
    indexer decoded them (integers as decimal strings, strings as on chain: untrusted).
    ``truncated``: the arguments the indexer cut to its size limit, each with the full value's
    ``sha256`` and its ``bytes`` or ``items`` count; None when nothing was cut.
    ``finality``: how final its block was when published; None for a message published
    before the field existed (unknown: a consumer that needs it asks the chain)."""

    event_id: str
    chain_id: int
    network: str
    contract: str
    event: str
    args: Mapping[str, Any]
    token_id: int | None
    block_number: int
    block_hash: str
    block_timestamp: int | None
    tx_hash: str
    log_index: int
    truncated: Mapping[str, Mapping[str, Any]] | None = None
    finality: Finality | None = None


@dataclass(frozen=True, slots=True)
class ChainRetraction:
    """``dnft.chain.retraction.v1``: a reorg removed event ``event_id``; undo its effect."""

    event_id: str
    chain_id: int
    network: str
    contract: str
    event: str
    token_id: int | None
    block_number: int
    block_hash: str


@dataclass(frozen=True, slots=True)
class ObservationSource:
    """One source of an observation, with the hash of its raw response."""

    source: str
    value: Decimal
    response_sha256: str
    agreed: bool | None = None
    observed_at: datetime | None = None
    block_number: int | None = None
    source_round_id: str | None = None


@dataclass(frozen=True, slots=True)
class OracleObservation:
    """``dnft.oracle.observation.v1``: a validated reading of feed ``feed_id``."""

    feed_id: str
    value: Decimal
    observed_at: datetime
    published_at: datetime
    round_id: int
    reason: str | None
    sources: tuple[ObservationSource, ...]


@dataclass(frozen=True, slots=True)
class RenderJob:
    """``dnft.render.job.v1``: render token ``token_id`` of ``collection`` at one state."""

    job_id: str
    collection: str
    chain_id: int
    contract: str
    token_id: int
    state_hash: str
    seed: int
    triggered_by: tuple[str, ...]
    planned_at: datetime


@dataclass(frozen=True, slots=True)
class MetadataUpdate:
    """``dnft.metadata.update.v1``: version ``version`` of a token is stored, to announce."""

    collection: str | None
    chain_id: int
    contract: str
    token_id: int
    version: int
    metadata_uri: str
    metadata_sha256: str
    metadata_cid: str
    image_sha256: str
    created_at: datetime


Message: TypeAlias = ChainEvent | ChainRetraction | OracleObservation | RenderJob | MetadataUpdate


def decode_message(value: bytes | None) -> Message:
    """A record's value as its typed message. Raises DecodeError: no value (a tombstone), not
    JSON, not an object, no known schema, invalid against it (bounds and formats included), or
    a value that does not convert."""
    if value is None:
        raise DecodeError("tombstone: the record has no value")
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise DecodeError("not a JSON object")
    name = validate_message(body)
    try:
        return _BUILDERS[name](body)
    except (ValueError, ArithmeticError) as exc:
        raise DecodeError(f"{name}: a value does not convert: {exc}") from None


def _build(cls: type[_T], body: Mapping[str, Any], **converted: object) -> _T:
    """``cls`` from the body's keys of the same names (absent optional keys are None), with
    ``converted`` values in place of the raw ones."""
    values = {f.name: body.get(f.name) for f in fields(cls)}
    values.update(converted)
    return cls(**values)


def _chain_event(b: dict[str, Any]) -> ChainEvent:
    return _build(ChainEvent, b, token_id=_token(b.get("token_id")))


def _chain_retraction(b: dict[str, Any]) -> ChainRetraction:
    return _build(ChainRetraction, b, token_id=_token(b.get("token_id")))


def _source(s: dict[str, Any]) -> ObservationSource:
    observed = s.get("observed_at")
    return _build(
        ObservationSource,
        s,
        value=Decimal(s["value"]),
        observed_at=None if observed is None else _time(observed),
    )


def _observation(b: dict[str, Any]) -> OracleObservation:
    return _build(
        OracleObservation,
        b,
        value=Decimal(b["value"]),
        observed_at=_time(b["observed_at"]),
        published_at=_time(b["published_at"]),
        sources=tuple(_source(s) for s in b["sources"]),
    )


def _render_job(b: dict[str, Any]) -> RenderJob:
    return _build(
        RenderJob,
        b,
        token_id=int(b["token_id"]),
        triggered_by=tuple(b.get("triggered_by") or ()),
        planned_at=_time(b["planned_at"]),
    )


def _metadata_update(b: dict[str, Any]) -> MetadataUpdate:
    return _build(
        MetadataUpdate,
        b,
        token_id=int(b["token_id"]),
        created_at=_time(b["created_at"]),
    )


def _token(text: str | None) -> int | None:
    return None if text is None else int(text)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


_BUILDERS: dict[str, Callable[[dict[str, Any]], Message]] = {
    CHAIN_EVENT_V1: _chain_event,
    CHAIN_RETRACTION_V1: _chain_retraction,
    ORACLE_OBSERVATION_V1: _observation,
    RENDER_JOB_V1: _render_job,
    METADATA_UPDATE_V1: _metadata_update,
}
