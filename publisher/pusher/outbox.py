"""The pusher's outbox in Postgres: updates -> pushes -> signed transactions -> receipts.

Each step is recorded before the next one happens, in one statement or transaction:

1. ``record_updates``: an update is durable before its Kafka offset is committed (a
   redelivery is a no-op: the key is (chain, contract, token, version)), and only if it
   matches a version in ``token_versions`` (the pusher trusts Postgres, not Kafka);
2. ``plan``: a push row and the assignment of its updates, atomically (under a finality
   hold, only updates whose chain events are final enough; held ones that a newer version or
   a reorg made obsolete are dropped in the same transaction);
3. ``record_signed``: the signed raw transaction, its hash and nonce, before broadcasting
   (after a crash the same bytes are broadcast again: never a second transaction);
4. ``mark_mined`` / ``confirm`` / ``unmine`` (reorg) / ``fail`` / ``release_nonce``.

Every method commits its own transaction; none blocks the event loop (asyncpg).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Final

import asyncpg

from publisher.pusher.fees import Fees
from publisher.pusher.rows import (
    Confirmed,
    Planned,
    PlannedPush,
    Push,
    Recorded,
    RefusedReason,
    TxRecord,
    UpdateRecord,
    WaitingUpdate,
)
from publisher.pusher.signer import SignedTx

Planner = Callable[[Sequence[WaitingUpdate]], list[PlannedPush]]

# The pusher's trust rule in one statement: each incoming update (numbered i) gets a verdict
# from token_versions (null: no such version in a collection bound to its contract; 0: it
# matches; 1: its metadata CID differs) and from the outbox (2: superseded, a real version
# older than one the outbox already holds for the token in the same collection: recorded now,
# a URI-carrying push would write the old URI over the newer one); only matching ones are
# inserted. A version already in the outbox stays 0 (a replay is a no-op), except that one a
# finality hold dropped as retracted is waiting again if it is still the token's newest there
# (its state came back: the render worker announces the version again). Every row comes back
# with the count inserted or waiting again.
_RECORD_TRUSTED: Final = """
with incoming as (
    select * from unnest($1::bigint[], $2::text[], $3::numeric[], $4::int[], $5::text[],
        $6::text[], $7::timestamptz[]) with ordinality
        as u(chain_id, contract, token_id, version, metadata_uri, metadata_cid, created_at, i)
), bound as (
    select * from unnest($8::bigint[], $9::text[], $10::text[])
        as b(chain_id, contract, collection)
), matched as (
    select u.*, m.collection, m.match from incoming u
    left join lateral (
        select v.collection, case when v.metadata_cid = u.metadata_cid then 0 else 1 end as match
        from bound b
        join token_versions v on v.collection = b.collection
        where b.chain_id = u.chain_id and b.contract = u.contract
            and v.token_id = u.token_id and v.version = u.version
        order by 2, 1 limit 1
    ) m on true
), compared as (
    select m.*, (
        select max(p.version) from pusher_updates p
        join token_versions v on v.collection = m.collection and v.token_id = p.token_id
            and v.version = p.version and v.metadata_cid = p.metadata_cid
        where p.chain_id = m.chain_id and p.contract = m.contract and p.token_id = m.token_id
    ) as newest, exists (
        select 1 from pusher_updates p
        where p.chain_id = m.chain_id and p.contract = m.contract and p.token_id = m.token_id
            and p.version = m.version
    ) as known
    from matched m
), checked as (
    select c.*, case
        when c.match = 0 and not c.known and c.newest > c.version then 2 else c.match
    end as verdict
    from compared c
), inserted as (
    insert into pusher_updates (chain_id, contract, token_id, version, metadata_uri,
        metadata_cid, created_at)
    select chain_id, contract, token_id, version, metadata_uri, metadata_cid, created_at
    from checked where verdict = 0
    on conflict do nothing
    returning 1
), revived as (
    update pusher_updates p set dropped_at = null, dropped_reason = null, recorded_at = now()
    from checked c
    where c.verdict = 0 and c.known and c.newest = c.version
        and p.chain_id = c.chain_id and p.contract = c.contract and p.token_id = c.token_id
        and p.version = c.version and p.metadata_cid = c.metadata_cid
        and p.dropped_reason = 'retracted' and p.push_id is null and p.failed_at is null
    returning 1
)
select i, verdict, (select count(*) from inserted) + (select count(*) from revived) as new
from checked order by i
"""

_REFUSED: Final[dict[int | None, RefusedReason]] = {
    None: "unknown_version",
    1: "cid_mismatch",
    2: "superseded",
}

# A chain event's id in a version's triggered_by: ``chainId:blockHash:logIndex``, with
# ``:part`` for an ERC-1155 batch fanned out per id. Other triggers: ``feed:<id>``,
# ``retracted:<event id>``, ``rerender``.
_CHAIN_EVENT_ID: Final = r"^[0-9]+:0x[0-9a-f]+:[0-9]+(:[0-9]+)?$"

# A contract's waiting updates with what a finality hold needs (announce_after), each with
# the version it matched at intake (same token, version and metadata CID, in a collection
# bound to the contract: $4):
# - superseded: a newer version of the token exists in that collection;
# - stale: a chain event that triggered the version is gone (a reorg retracted it) and the
#   token's state moved on. Only both: a re-mined transaction gives its event a new id but
#   the same state (still to announce), and a state moved on by an ordinary new event leaves
#   the version to be superseded by the next one; if that one is never published (curation
#   rejects it, its render is dead-lettered) this version is still announced;
# - hold_block: the block the version's events must be final up to. When every trigger of
#   the version is a stored chain event (or a feed change), the newest block of those events
#   and of the collection's collection-wide events: a token's own events arrive in block
#   order (one key, one partition), collection-wide ones on another key may not, so all of
#   those count (they are rare; a later one only holds longer).
#   Otherwise (a feed change, a retraction or a rerender alone; or a trigger gone because a
#   reorg re-mined its transaction under a new block hash) the newest block of every stored
#   event of the token and its collection's collection-wide ones: regen_events records no
#   time, so which events a version was rendered from is not known; this may hold longer.
_WAITING_HELD: Final = rf"""
select u.token_id, u.version, u.metadata_cid,
    u.recorded_at <= now() - make_interval(secs => $3) as waited,
    (select max(n.version) from token_versions n
        where n.collection = v.collection and n.token_id = u.token_id) > u.version as superseded,
    v.collection is not null and t.state_hash is distinct from v.state_hash
        and tr.found < tr.chained as stale,
    case when tr.chained > 0 and tr.found = tr.chained and tr.other = 0 then greatest(tr.block, (
        select max(e.block_number) from regen_events e
        where e.collection = v.collection and e.token_id = -1
    ))
    else (
        select max(e.block_number) from regen_events e
        where e.collection = v.collection and e.token_id in (u.token_id, -1)
    ) end as hold_block
from pusher_updates u
left join lateral (
    select collection, state_hash, triggered_by from token_versions v
    where v.collection = any($4::text[]) and v.token_id = u.token_id and v.version = u.version
        and v.metadata_cid = u.metadata_cid
    order by collection limit 1
) v on true
left join regen_tokens t on t.collection = v.collection and t.token_id = u.token_id
left join lateral (
    select count(*) filter (where g.id ~ '{_CHAIN_EVENT_ID}') as chained,
        count(e.event_id) as found,
        count(*) filter (where g.id !~ '{_CHAIN_EVENT_ID}' and g.id not like 'feed:%') as other,
        max(e.block_number) as block
    from jsonb_array_elements_text(v.triggered_by) g(id)
    left join regen_events e on e.collection = v.collection and e.event_id = g.id
) tr on true
where u.chain_id = $1 and u.contract = $2 and u.push_id is null and u.failed_at is null
    and u.dropped_at is null
order by u.token_id, u.version
"""

_PUSH_COLUMNS = (
    "id, chain_id, contract, mode, first_token, last_token, token_count, calldata, state, "
    "nonce, gas_limit, mined_hash, mined_block, mined_block_hash, created_at"
)


class Outbox:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        sender: str,
        bindings: Mapping[tuple[int, str], Sequence[str]] | None = None,
    ) -> None:
        """``bindings``: (chain id, lowercase contract) -> the collections bound to it; a
        finality hold reads the versions of those only (``plan`` with ``final_block``)."""
        self._pool = pool
        self.sender = sender.lower()
        self._bindings = dict(bindings or {})

    # --- updates ----------------------------------------------------------------------

    async def record_updates(
        self, updates: Sequence[UpdateRecord], bindings: Mapping[tuple[int, str], Sequence[str]]
    ) -> Recorded:
        """Insert the updates that match a recorded version and were not seen before; refuse
        the others. ``bindings``: (chain id, contract) -> the collections bound to it. A match
        is a ``token_versions`` row of one of those collections with the update's token id,
        version and metadata CID, for a version not older than the newest one of the token
        already recorded (unless it is that very row: a replay). One statement (the check
        and the insert in one transaction, one round trip for the batch). Commits."""
        if not updates:
            return Recorded(0, [])
        pairs = [(key, name) for key, names in bindings.items() for name in names]
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                _RECORD_TRUSTED,
                [u.chain_id for u in updates],
                [u.contract for u in updates],
                [Decimal(u.token_id) for u in updates],
                [u.version for u in updates],
                [u.metadata_uri for u in updates],
                [u.metadata_cid for u in updates],
                [u.created_at for u in updates],
                [chain_id for (chain_id, _), _ in pairs],
                [contract for (_, contract), _ in pairs],
                [name for _, name in pairs],
            )
        refused: list[tuple[UpdateRecord, RefusedReason]] = [
            (updates[r["i"] - 1], _REFUSED[r["verdict"]]) for r in rows if r["verdict"] != 0
        ]
        return Recorded(int(rows[0]["new"]), refused)

    # --- planning ---------------------------------------------------------------------

    async def pushes_since(self, chain_id: int, seconds: float) -> int:
        """Pushes planned for this sender on ``chain_id`` in the last ``seconds``."""
        async with self._pool.acquire() as conn:
            count: int = await conn.fetchval(
                "select count(*) from pusher_pushes where chain_id = $1 and sender = $2 "
                "and created_at > now() - make_interval(secs => $3)",
                chain_id,
                self.sender,
                seconds,
            )
        return count

    async def plan(
        self,
        chain_id: int,
        contract: str,
        mode: str,
        *,
        window_s: float,
        max_pushes: int,
        planner: Planner,
        final_block: int | None = None,
    ) -> Planned:
        """Turn the waiting updates of ``contract`` into at most ``max_pushes`` pushes, once
        the oldest of them has waited ``window_s``. Commits the pushes and the assignment of
        their updates in one transaction.

        ``final_block`` (a finality hold: the chain's block of the target's
        ``announce_after`` tag): only updates whose version's chain events are at or below it
        are planned, the others stay held; a waiting update whose version is no longer its
        token's newest, or whose state is no longer the token's current one (a reorg
        retracted an event it was rendered from), is dropped for good (in the same
        transaction: what is planned is current). Raises ValueError under a hold for a
        contract the Outbox has no ``bindings`` for."""
        if max_pushes < 1:
            return Planned(0)
        async with self._pool.acquire() as conn, conn.transaction():
            if final_block is None:
                due = await conn.fetchval(
                    "select min(recorded_at) <= now() - make_interval(secs => $3) "
                    "from pusher_updates where chain_id = $1 and contract = $2 "
                    "and push_id is null and failed_at is null and dropped_at is null",
                    chain_id,
                    contract,
                    window_s,
                )
                if not due:
                    return Planned(0)
                rows = await conn.fetch(
                    "select token_id, version, metadata_cid from pusher_updates "
                    "where chain_id = $1 and contract = $2 and push_id is null "
                    "and failed_at is null and dropped_at is null order by token_id, version",
                    chain_id,
                    contract,
                )
                waiting = [WaitingUpdate(int(r[0]), r[1], r[2]) for r in rows]
                held, dropped = 0, list[tuple[int, int, str]]()
            else:
                waiting, held, dropped = await self._release(
                    conn, chain_id, contract, final_block, window_s
                )
                if not waiting:
                    return Planned(0, held, dropped)
            pushes = planner(waiting)[:max_pushes]
            for push in pushes:
                push_id = await conn.fetchval(
                    "insert into pusher_pushes (chain_id, contract, sender, mode, first_token, "
                    "last_token, token_count, calldata) values ($1, $2, $3, $4, $5, $6, $7, $8) "
                    "returning id",
                    chain_id,
                    contract,
                    self.sender,
                    mode,
                    Decimal(push.first_token),
                    Decimal(push.last_token),
                    push.token_count,
                    push.calldata,
                )
                # Exactly the updates the call was built from: one recorded meanwhile waits
                # for the next push (in token-uri mode it may carry a newer URI).
                await conn.execute(
                    "update pusher_updates set push_id = $5 where chain_id = $1 "
                    "and contract = $2 and (token_id, version) in "
                    "(select * from unnest($3::numeric[], $4::int[])) and push_id is null",
                    chain_id,
                    contract,
                    [Decimal(u.token_id) for u in push.updates],
                    [u.version for u in push.updates],
                    push_id,
                )
        return Planned(len(pushes), held, dropped)

    async def _release(
        self,
        conn: asyncpg.Connection,
        chain_id: int,
        contract: str,
        final_block: int,
        window_s: float,
    ) -> tuple[list[WaitingUpdate], int, list[tuple[int, int, str]]]:
        """In the caller's transaction: drop the held updates that can never be announced,
        and return (the released ones, once the oldest of them waited ``window_s``; how many
        stay held; the dropped ones)."""
        collections = self._bindings.get((chain_id, contract))
        if not collections:
            raise ValueError(f"no collection bound to {contract} on chain {chain_id}")
        rows = await conn.fetch(_WAITING_HELD, chain_id, contract, window_s, list(collections))
        dropped: list[tuple[int, int, str]] = []
        released: list[asyncpg.Record] = []
        held = 0
        for r in rows:
            token, version = int(r["token_id"]), int(r["version"])
            if r["superseded"]:
                dropped.append((token, version, "superseded"))
            elif r["stale"]:
                # Dropped only when the state moved on: a reorg that re-mined the same
                # transactions gives the events new ids but the same state, still to announce.
                dropped.append((token, version, "retracted"))
            elif r["hold_block"] is not None and r["hold_block"] > final_block:
                held += 1
            else:
                released.append(r)
        for reason in ("superseded", "retracted"):
            gone = [(t, v) for t, v, why in dropped if why == reason]
            if gone:
                await conn.execute(
                    "update pusher_updates set dropped_at = now(), dropped_reason = $5 "
                    "where chain_id = $1 and contract = $2 and (token_id, version) in "
                    "(select * from unnest($3::numeric[], $4::int[])) and push_id is null",
                    chain_id,
                    contract,
                    [Decimal(t) for t, _ in gone],
                    [v for _, v in gone],
                    reason,
                )
        if not any(r["waited"] for r in released):  # none waited window_s yet
            return [], held, dropped
        waiting = [WaitingUpdate(int(r[0]), r[1], r[2]) for r in released]
        return waiting, held, dropped

    # --- signing and sending ------------------------------------------------------------

    async def max_nonce(self, chain_id: int) -> int | None:
        """The highest nonce any live push of this sender holds on ``chain_id``."""
        async with self._pool.acquire() as conn:
            value: int | None = await conn.fetchval(
                "select max(nonce) from pusher_pushes where chain_id = $1 and sender = $2",
                chain_id,
                self.sender,
            )
        return value

    async def others_open(self, chain_id: int, contracts: Sequence[str]) -> dict[str, int]:
        """Other senders with open (planned, sent or mined) pushes to ``contracts`` on
        ``chain_id``: sender -> how many. Only a sender tracks its own pushes, so another's
        stay open for good. (Another pusher, with its own leader scope and key, may push to
        other contracts of the chain: those are its own business.)"""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "select sender, count(*) from pusher_pushes where chain_id = $1 "
                "and sender <> $2 and contract = any($3::text[]) "
                "and state in ('planned', 'sent', 'mined') group by sender order by sender",
                chain_id,
                self.sender,
                list(contracts),
            )
        return {str(r[0]): int(r[1]) for r in rows}

    async def open_pushes(self, chain_id: int) -> list[Push]:
        """Planned, sent and mined pushes with their live transactions; planned ones last,
        the others by nonce."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"select {_PUSH_COLUMNS} from pusher_pushes where chain_id = $1 and sender = $2 "
                "and state in ('planned', 'sent', 'mined') order by nonce nulls last, id",
                chain_id,
                self.sender,
            )
            pushes = [_push(r) for r in rows]
            if pushes:
                txs = await conn.fetch(
                    "select push_id, hash, nonce, max_fee_per_gas, max_priority_fee_per_gas, "
                    "raw, signed_at, broadcast_at from pusher_transactions "
                    "where push_id = any($1::bigint[]) and not dropped order by signed_at, hash",
                    [p.id for p in pushes],
                )
                by_id = {p.id: p for p in pushes}
                for t in txs:
                    by_id[t["push_id"]].txs.append(
                        TxRecord(
                            hash=t["hash"],
                            nonce=t["nonce"],
                            fees=Fees(
                                int(t["max_fee_per_gas"]), int(t["max_priority_fee_per_gas"])
                            ),
                            raw=bytes(t["raw"]),
                            signed_at=t["signed_at"],
                            broadcast_at=t["broadcast_at"],
                        )
                    )
        return pushes

    async def record_signed(
        self, push: Push, nonce: int, gas_limit: int, fees: Fees, signed: SignedTx
    ) -> TxRecord:
        """Record a signed transaction of ``push`` before it is broadcast. The push keeps the
        nonce from now on. Commits. Raises asyncpg.UniqueViolationError if the nonce is
        another push's (two leaders: the loser must stop)."""
        async with self._pool.acquire() as conn, conn.transaction():
            updated = await conn.execute(
                "update pusher_pushes set nonce = $2, gas_limit = $3, state = 'sent' "
                "where id = $1 and (nonce is null or nonce = $2) "
                "and state in ('planned', 'sent')",
                push.id,
                nonce,
                gas_limit,
            )
            if updated != "UPDATE 1":
                raise RuntimeError(f"push {push.id} changed under the pusher ({updated})")
            signed_at = await conn.fetchval(
                "insert into pusher_transactions (hash, push_id, nonce, max_fee_per_gas, "
                "max_priority_fee_per_gas, raw) values ($1, $2, $3, $4, $5, $6) "
                "returning signed_at",
                signed.hash,
                push.id,
                nonce,
                Decimal(fees.max_fee_per_gas),
                Decimal(fees.max_priority_fee_per_gas),
                signed.raw,
            )
        return TxRecord(signed.hash, nonce, fees, signed.raw, signed_at, None)

    async def mark_broadcast(self, tx_hash: str) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(
                "update pusher_transactions set broadcast_at = now() where hash = $1", tx_hash
            )

    # --- receipts -----------------------------------------------------------------------

    async def mark_mined(
        self,
        push_id: int,
        *,
        tx_hash: str,
        block: int,
        block_hash: str,
        gas_used: int,
        effective_gas_price: int,
    ) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(
                "update pusher_pushes set state = 'mined', mined_hash = $2, mined_block = $3, "
                "mined_block_hash = $4, gas_used = $5, effective_gas_price = $6 "
                "where id = $1 and state in ('sent', 'mined')",
                push_id,
                tx_hash,
                block,
                block_hash,
                Decimal(gas_used),
                Decimal(effective_gas_price),
            )

    async def unmine(self, push_id: int) -> None:
        """A reorg removed the push's transaction: it is in flight again (same nonce)."""
        async with self._pool.acquire() as conn:
            await conn.execute(
                "update pusher_pushes set state = 'sent', mined_hash = null, mined_block = null, "
                "mined_block_hash = null, gas_used = null, effective_gas_price = null "
                "where id = $1 and state = 'mined'",
                push_id,
            )

    async def confirm(self, push_id: int) -> Confirmed:
        """The push is final: it and its updates are confirmed. Commits."""
        async with self._pool.acquire() as conn, conn.transaction():
            done = await conn.execute(
                "update pusher_pushes set state = 'confirmed', confirmed_at = now() "
                "where id = $1 and state = 'mined'",
                push_id,
            )
            if done != "UPDATE 1":
                return Confirmed([])
            rows = await conn.fetch(
                "update pusher_updates set confirmed_at = now() where push_id = $1 "
                "returning created_at",
                push_id,
            )
        return Confirmed([r[0] for r in rows])

    async def fail(self, push_id: int, error: str) -> int:
        """The push cannot succeed (its call reverts): it and its updates are failed, kept
        with the reason for an operator. Returns the updates failed. Commits."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "update pusher_pushes set state = 'failed', error = $2 where id = $1",
                push_id,
                error[:2000],
            )
            result: str = await conn.execute(
                "update pusher_updates set failed_at = now() where push_id = $1", push_id
            )
        return int(result.rsplit(" ", 1)[1])

    async def release_nonce(self, push_id: int) -> None:
        """Another transaction consumed the push's nonce and none of ours was mined: its
        transactions can never be mined, so it is planned again for a new nonce."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "update pusher_transactions set dropped = true where push_id = $1", push_id
            )
            await conn.execute(
                "update pusher_pushes set state = 'planned', nonce = null, gas_limit = null "
                "where id = $1 and state = 'sent'",
                push_id,
            )

    # --- gauges -------------------------------------------------------------------------

    async def pending(self) -> tuple[int, float]:
        """(updates not yet confirmed nor failed, age in seconds of the oldest of them)."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                "select count(*), coalesce(extract(epoch from now() - min(created_at)), 0) "
                "from pusher_updates where confirmed_at is null and failed_at is null "
                "and dropped_at is null"
            )
        assert row is not None
        return int(row[0]), max(0.0, float(row[1]))


def _push(r: asyncpg.Record) -> Push:
    return Push(
        id=r["id"],
        chain_id=r["chain_id"],
        contract=r["contract"],
        mode=r["mode"],
        first_token=int(r["first_token"]),
        last_token=int(r["last_token"]),
        token_count=r["token_count"],
        calldata=bytes(r["calldata"]),
        state=r["state"],
        nonce=r["nonce"],
        gas_limit=r["gas_limit"],
        mined_hash=r["mined_hash"],
        mined_block=r["mined_block"],
        mined_block_hash=r["mined_block_hash"],
        created_at=r["created_at"],
    )
