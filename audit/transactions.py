"""Audit the pusher's on-chain side effect, grounded in the chain: no announcement is sent twice.

The chain is read first: the announcements of the network's configured contracts in a block
range, ERC-4906 (``MetadataUpdate(uint256)``, ``BatchMetadataUpdate(uint256,uint256)``) and
ERC-1155 (``URI(string,uint256)``, which a ``mode: call`` push of ``setURI`` causes), each with
the token ids it covers, with the indexer's ``eth_getLogs`` reader, grouped by transaction;
each transaction's
sender comes from ``eth_getTransactionByHash`` (JSON-RPC batches). The transactions sent by a
pusher signer (a ``pusher_pushes.sender`` of the chain) are then compared with the outbox:

* unrecorded: a pusher transaction whose hash is not in ``pusher_transactions``: the signer
  sent something its outbox does not know (the double send a crash could cause, since every
  transaction is recorded before it is broadcast);
* duplicated: a push with more than one transaction mined (its updates announced twice);
* missing: a push the outbox says is confirmed, mined in the range, whose mined transaction
  announced nothing there, or (where the push's token range is known) none of its tokens
  (the database says announced, the chain does not have it).

Limitation: a reverted transaction emits no log, so it is not seen here (it spends gas but
announces nothing twice). Only announcing transactions are: a pusher signer's other
transactions are not the pusher's side effect.

:func:`classify_transactions` is the pure part. Reads only; commits nothing.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import asyncpg
from eth_utils.crypto import keccak

from audit.plain import Plain, plain
from dnft.rpc import RawLog, RpcClient, iter_logs

METADATA_UPDATE: Final = "0x" + keccak(text="MetadataUpdate(uint256)").hex()
BATCH_METADATA_UPDATE: Final = "0x" + keccak(text="BatchMetadataUpdate(uint256,uint256)").hex()
URI: Final = "0x" + keccak(text="URI(string,uint256)").hex()
ANNOUNCEMENT_TOPICS: Final = (METADATA_UPDATE, BATCH_METADATA_UPDATE, URI)
# Transactions per eth_getTransactionByHash batch; providers commonly cap batches at 1000.
SENDER_BATCH: Final = 200


@dataclass(frozen=True, slots=True)
class Announcement:
    """One announcement log on chain, with the token ids it covers (``first_id`` to
    ``last_id``; None where the log does not say, e.g. a malformed one)."""

    tx_hash: str  # lowercase 0x-hex
    block_number: int
    log_index: int
    contract: str  # lowercase 0x address
    first_id: int | None = None
    last_id: int | None = None

    def covers(self, first: int, last: int) -> bool:
        """Whether it announces any id of ``first..last``."""
        if self.first_id is None or self.last_id is None:
            return False
        return self.first_id <= last and first <= self.last_id


def announcement_of(log: RawLog) -> Announcement:
    """The fields of an ``eth_getLogs`` entry the audit uses. Pure."""
    first, last = _covered(log)
    return Announcement(
        tx_hash=str(log["transactionHash"]).lower(),
        block_number=int(str(log["blockNumber"]), 16),
        log_index=int(str(log["logIndex"]), 16),
        contract=log["address"].lower(),
        first_id=first,
        last_id=last,
    )


def _covered(log: RawLog) -> tuple[int | None, int | None]:
    """The ids an announcement covers: ``MetadataUpdate(id)`` and ``BatchMetadataUpdate(from,
    to)`` in the data, ``URI(value, id indexed)`` in the second topic."""
    topics = log.get("topics") or []
    data = str(log.get("data") or "0x")[2:]
    words = [int(data[i : i + 64], 16) for i in range(0, len(data) - 63, 64)]
    try:
        if topics and topics[0] == METADATA_UPDATE and words:
            return words[0], words[0]
        if topics and topics[0] == BATCH_METADATA_UPDATE and len(words) >= 2:
            return words[0], words[1]
        if topics and topics[0] == URI and len(topics) >= 2:
            token = int(str(topics[1]), 16)
            return token, token
    except ValueError:  # not hex: nothing covered
        pass
    return None, None


@dataclass(frozen=True, slots=True)
class DuplicatedPush(Plain):
    """A push with more than one transaction mined."""

    push_id: int
    hashes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MissingPush(Plain):
    """A confirmed push whose mined transaction announced nothing in the range."""

    push_id: int
    hash: str


@dataclass(slots=True)
class TransactionAudit:
    """The pusher's announcing transactions in a range against its outbox.

    ``announcements``: announcement logs of the audited contracts in the range, whoever sent
    them; ``transactions``: distinct transactions among them sent by a pusher signer;
    ``pushes_confirmed``: confirmed pushes of those contracts mined in the range. Lists are
    in block order (``missing``: by push id).
    """

    announcements: int = 0
    transactions: int = 0
    pushes_confirmed: int = 0
    duplicated: list[DuplicatedPush] = field(default_factory=list)
    unrecorded: list[str] = field(default_factory=list)
    missing: list[MissingPush] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.duplicated or self.unrecorded or self.missing)

    def as_dict(self) -> dict[str, Any]:
        return {**plain(self, leave_out=("notes",)), "clean": self.clean}


def classify_transactions(
    announcements: Sequence[Announcement],
    senders: Mapping[str, str],
    pusher_senders: Iterable[str],
    recorded: Mapping[str, int],
    confirmed: Mapping[int, str],
    ranges: Mapping[int, tuple[int, int]] | None = None,
) -> TransactionAudit:
    """Compare the chain's announcements with the outbox. Pure.

    ``senders``: tx hash -> ``from`` of the announcing transactions (one without a known
    sender is not the pusher's); ``pusher_senders``: the pusher's signer addresses;
    ``recorded``: tx hash -> push id, from ``pusher_transactions`` (at least every pusher
    transaction of ``announcements`` that it holds); ``confirmed``: push id -> mined hash of
    the confirmed pushes mined in the range; ``ranges``: push id -> its first and last token,
    where known (a mined transaction announcing none of them is missing too). Hashes and
    addresses compare lowercase.
    """
    ours = {s.lower() for s in pusher_senders}
    from_of = {h.lower(): s.lower() for h, s in senders.items()}
    push_of = {h.lower(): push for h, push in recorded.items()}
    announced: dict[str, list[Announcement]] = {}  # tx hashes in block order, each once
    for a in sorted(announcements, key=lambda a: (a.block_number, a.log_index)):
        announced.setdefault(a.tx_hash.lower(), []).append(a)
    spans = ranges or {}
    pusher_txs = [h for h in announced if from_of.get(h) in ours]
    by_push: defaultdict[int, list[str]] = defaultdict(list)
    unrecorded = []
    for h in pusher_txs:
        push = push_of.get(h)
        if push is None:
            unrecorded.append(h)
        else:
            by_push[push].append(h)
    duplicated = [DuplicatedPush(push, tuple(hs)) for push, hs in by_push.items() if len(hs) > 1]
    missing = [
        MissingPush(push, h.lower())
        for push, h in sorted(confirmed.items())
        if h.lower() not in announced
        or (push in spans and not any(a.covers(*spans[push]) for a in announced[h.lower()]))
    ]
    return TransactionAudit(
        announcements=len(announcements),
        transactions=len(pusher_txs),
        pushes_confirmed=len(confirmed),
        duplicated=duplicated,
        unrecorded=unrecorded,
        missing=missing,
    )


# --- readers ---------------------------------------------------------------------------


async def read_announcements(
    client: RpcClient,
    contracts: Sequence[str],
    from_block: int,
    to_block: int,
    *,
    max_range: int = 2000,
    in_flight: int = 4,
) -> list[Announcement]:
    """Every announcement log of ``contracts`` in the range (the indexer's range-adaptive
    ``eth_getLogs``). Raises the client's RpcError after its own retries."""
    out: list[Announcement] = []
    chunks = iter_logs(
        client,
        list(contracts),
        [list(ANNOUNCEMENT_TOPICS)],
        from_block,
        to_block,
        max_range=max_range,
        in_flight=in_flight,
    )
    async with contextlib.aclosing(chunks):
        async for chunk in chunks:
            out.extend(announcement_of(log) for log in chunk)
    return out


async def read_senders(client: RpcClient, hashes: Sequence[str]) -> dict[str, str]:
    """tx hash -> lowercase ``from``, in ``eth_getTransactionByHash`` batches. A transaction
    the node no longer knows (reorged away since its log was read) is left out. Raises the
    client's RpcError."""
    out: dict[str, str] = {}
    for start in range(0, len(hashes), SENDER_BATCH):
        part = hashes[start : start + SENDER_BATCH]
        results = await client.batch([("eth_getTransactionByHash", [h]) for h in part])
        for h, tx in zip(part, results, strict=True):
            if tx and tx.get("from"):
                out[h] = str(tx["from"]).lower()
    return out


async def audit_transactions(
    client: RpcClient,
    conn: asyncpg.Connection,
    chain_id: int,
    contracts: Sequence[str],
    from_block: int,
    to_block: int,
    *,
    max_range: int = 2000,
    in_flight: int = 4,
) -> TransactionAudit:
    """Audit the pusher's announcing transactions of ``contracts`` on ``chain_id`` in
    ``from_block..to_block`` (a range the caller checked against the head).

    Where no pusher ran against this database (pusher tables absent, or no push recorded
    for the chain) there is no signer to look for: zeros and clean, with a note, and the
    chain is not read. Reads only. Raises the client's RpcError and asyncpg errors other
    than a missing table.
    """
    addresses = sorted({c.lower() for c in contracts})
    try:
        pusher_senders = [
            r[0]
            for r in await conn.fetch(
                "select distinct lower(sender) from pusher_pushes where chain_id = $1", chain_id
            )
        ]
    except asyncpg.UndefinedTableError:
        return TransactionAudit(
            notes=["transactions not audited: the pusher tables do not exist (no pusher ran)"]
        )
    if not pusher_senders:
        return TransactionAudit(
            notes=[
                f"transactions not audited: no pusher push is recorded for chain {chain_id}"
                " (no pusher ran)"
            ]
        )
    announcements = await read_announcements(
        client, addresses, from_block, to_block, max_range=max_range, in_flight=in_flight
    )
    hashes = list(dict.fromkeys(a.tx_hash for a in announcements))
    senders = await read_senders(client, hashes)
    ours = set(pusher_senders)
    pusher_hashes = [h for h in hashes if senders.get(h) in ours]
    rows = await conn.fetch(
        "select t.hash, t.push_id from pusher_transactions t "
        "join pusher_pushes p on p.id = t.push_id "
        "where p.chain_id = $1 and lower(t.hash) = any($2::text[])",
        chain_id,
        pusher_hashes,
    )
    recorded = {str(r[0]).lower(): int(r[1]) for r in rows}
    pushes = await conn.fetch(
        "select id, mined_hash, first_token, last_token from pusher_pushes "
        "where chain_id = $1 and state = 'confirmed' "
        "and mined_block between $2 and $3 and lower(contract) = any($4::text[])",
        chain_id,
        from_block,
        to_block,
        addresses,
    )
    confirmed = {int(r[0]): str(r[1]) for r in pushes}
    ranges = {int(r[0]): (int(r[2]), int(r[3])) for r in pushes}
    audit = classify_transactions(announcements, senders, ours, recorded, confirmed, ranges)
    unknown = len(hashes) - len(senders)
    if unknown:
        audit.notes.append(
            f"transactions: {unknown} announcing transaction(s) no longer known to the node"
            " (reorged away while reading?); not classified"
        )
    return audit


__all__ = [
    "ANNOUNCEMENT_TOPICS",
    "BATCH_METADATA_UPDATE",
    "METADATA_UPDATE",
    "URI",
    "Announcement",
    "DuplicatedPush",
    "MissingPush",
    "TransactionAudit",
    "announcement_of",
    "audit_transactions",
    "classify_transactions",
    "read_announcements",
    "read_senders",
]
