"""The outbox's rows as typed values: an update on its way in, a push planned from waiting
updates, a signed transaction, and what recording and confirming returned."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from publisher.pusher.fees import Fees


@dataclass(frozen=True, slots=True)
class UpdateRecord:
    """One metadata update to announce (from a ``dnft.metadata.update.v1`` message)."""

    chain_id: int
    contract: str  # lowercase 0x address
    token_id: int
    version: int
    metadata_uri: str
    metadata_cid: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class WaitingUpdate:
    token_id: int
    version: int
    metadata_cid: str


@dataclass(frozen=True, slots=True)
class PlannedPush:
    """A push to create: its call and exactly which tokens' waiting updates it covers."""

    first_token: int
    last_token: int
    updates: Sequence[WaitingUpdate]
    calldata: bytes

    @property
    def token_count(self) -> int:
        return len({u.token_id for u in self.updates})


@dataclass(frozen=True, slots=True)
class TxRecord:
    hash: str
    nonce: int
    fees: Fees
    raw: bytes
    signed_at: datetime
    broadcast_at: datetime | None


@dataclass(slots=True)
class Push:
    id: int
    chain_id: int
    contract: str
    mode: str
    first_token: int
    last_token: int
    token_count: int
    calldata: bytes
    state: str
    nonce: int | None
    gas_limit: int | None
    mined_hash: str | None
    mined_block: int | None
    mined_block_hash: str | None
    created_at: datetime
    txs: list[TxRecord] = field(default_factory=list)  # live ones, oldest first

    @property
    def latest_tx(self) -> TxRecord | None:
        return self.txs[-1] if self.txs else None


@dataclass(frozen=True, slots=True)
class Confirmed:
    """What confirming a push changed: the updates it covered (created_at, for latency)."""

    update_created_at: list[datetime]


@dataclass(frozen=True, slots=True)
class Recorded:
    """What ``record_updates`` did: how many updates were new (or waiting again: a version a
    finality hold had dropped, announced again while still the token's newest), and those
    refused with the reason (``unknown_version``: no such version of the token in a bound
    collection; ``cid_mismatch``: the version exists with another metadata CID;
    ``superseded``: a real version older than one already recorded for the token in the same
    collection, which would roll its URI back)."""

    new: int
    refused: list[tuple[UpdateRecord, RefusedReason]]


RefusedReason = Literal["unknown_version", "cid_mismatch", "superseded"]


@dataclass(frozen=True, slots=True)
class Planned:
    """What one planning pass of a contract did: pushes created, updates still held for
    finality (``announce_after``), and held updates dropped for good, each as
    (token id, version, reason: ``superseded``: a newer version of the token exists;
    ``retracted``: the token's state is no longer the version's)."""

    pushes: int
    held: int = 0
    dropped: list[tuple[int, int, str]] = field(default_factory=list)
