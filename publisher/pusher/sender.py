"""One chain's pushes: plan (window, rate cap) -> sign -> broadcast -> receipts -> confirmed.

``ChainPusher.step`` makes one pass, driven entirely by the outbox, so a pass after a crash
picks up exactly where the last one stopped:

- **plan**: waiting updates whose window is over become pushes, at most
  ``max_transactions_per_minute`` new ones per minute (replacements are not counted: they are
  what gets a stuck push through); a target with ``announce_after: safe | finalized`` plans
  only updates whose chain events are at or below the node's block of that tag;
- **track** every push in flight: a receipt of any of its transactions (they share a nonce,
  so at most one is ever mined) marks it mined; ``confirmations`` deep and still canonical, it
  is confirmed with its updates. A mined push whose receipt disappeared was reorged out: it
  is in flight again and its latest signed bytes are broadcast again. Unmined for
  ``replace_after_s``: replaced with bumped fees. Its nonce consumed by a transaction that is
  not ours: planned again for a new nonce (none of ours can be mined any more);
- **sign** planned pushes in order: nonce, gas estimate, fees, signature, recorded, broadcast.

The first pass after a start broadcasts every unmined transaction again, in nonce order, so
a transaction recorded but never sent before a crash fills its nonce.

Fencing: ``fence`` (the leader lease's check) runs right before every signature and every
broadcast, so a pusher that wakes from a pause after its lease ran out signs and sends nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import structlog

from dnft import metrics
from dnft.config import NetworkSettings, PusherSettings
from dnft.errors import ConfigError, RpcError
from dnft.rpc import RpcNodeError
from publisher.pusher.calls import CallSpec, plan_calls
from publisher.pusher.chain import Chain, Receipt
from publisher.pusher.crashpoints import crash_point
from publisher.pusher.fees import FeePolicy, Fees
from publisher.pusher.nonce import NonceManager
from publisher.pusher.outbox import Outbox
from publisher.pusher.rows import Planned, PlannedPush, Push, TxRecord, WaitingUpdate
from publisher.pusher.signer import Signer, UnsignedTx

log = structlog.get_logger("dnft.pusher")

# Estimates are exact for the state they ran on; the margin covers state that changes before
# inclusion. Unused gas is not charged.
GAS_MARGIN: Final = 1.25
# An unmined transaction is broadcast again this often: nodes drop pool entries silently.
REBROADCAST_S: Final = 15.0
# Replies to a broadcast that mean the node has (or had) this very transaction.
_KNOWN: Final = ("already known", "already imported", "known transaction")
# Passes that must see a push's nonce mined without a receipt of ours before it is re-planned.
CONSUMED_PASSES: Final = 3


@dataclass(frozen=True, slots=True)
class PushTarget:
    """A configured collection on this chain (``mode: none`` ones are never targets)."""

    name: str
    contract: str  # lowercase 0x address
    mode: str  # erc4906 | token-uri | call
    uri_template: str
    call: CallSpec | None = None  # mode call: the configured function and args
    # Announce a version once its chain events are this final (the node's tag); head: at once.
    announce_after: str = "head"

    @property
    def spec(self) -> CallSpec:
        """The call announcing this target's updates (a named mode's fixed one by default)."""
        if self.call is not None:
            return self.call
        return CallSpec.for_mode(self.mode, self.uri_template)


class ChainPusher:
    def __init__(
        self,
        *,
        network: NetworkSettings,
        settings: PusherSettings,
        targets: Sequence[PushTarget],
        outbox: Outbox,
        chain: Chain,
        signer: Signer,
        fence: Callable[[], None] | None = None,
    ) -> None:
        self.network = network
        # LeaderLock.check in the daemon (raises LeaseLost); None where no lease applies.
        self._fence = fence
        self._settings = settings
        self._targets = list(targets)
        self._outbox = outbox
        self._chain = chain
        self._signer = signer
        self._fees = FeePolicy(settings.fees)
        self._nonces = NonceManager()
        self._rebroadcast_all = True  # the first pass after a start
        self._capped: set[int] = set()  # pushes whose bump hit the fee cap (warned once)
        self._consumed: dict[int, int] = {}  # push id -> passes that saw its nonce taken
        self._log = log.bind(network=network.name, sender=signer.address)

    @property
    def targets(self) -> list[PushTarget]:
        return list(self._targets)

    @property
    def chain_id(self) -> int:
        return self.network.chain_id

    async def start(self) -> None:
        """Check that the node serves the configured chain and every ``announce_after`` tag,
        and that no other key has pushes open on this chain; raises ConfigError otherwise."""
        actual = await self._chain.chain_id()
        if actual != self.chain_id:
            raise ConfigError(
                f"networks[{self.network.name}].chain_id",
                f"is {self.chain_id}, but the node answers chain id {actual}",
            )
        for target in self._targets:
            if target.announce_after == "head":
                continue
            try:
                await self._chain.tagged_block(target.announce_after)
            except RpcNodeError as exc:
                raise ConfigError(
                    f"pusher.collections[{target.name}].announce_after",
                    f"the node of network {self.network.name!r} does not serve the "
                    f"{target.announce_after!r} block tag ({exc.message}): use a node that "
                    "does, or announce_after: head",
                ) from None
        others = await self._outbox.others_open(self.chain_id, [t.contract for t in self._targets])
        if others:
            # Only a push's own sender tracks it (nonce, receipts, confirmation): under a new
            # key the old one's pushes would stay open, untracked, for good.
            listed = ", ".join(f"{sender} ({count})" for sender, count in others.items())
            raise ConfigError(
                f"pusher.signers.{self.network.name}",
                f"{sum(others.values())} push(es) of another key are still open on network "
                f"{self.network.name!r} (sender: {listed}); keep that key until they are "
                f"confirmed (dnft status shows them), then change it",
            )

    async def run(self, stopping: asyncio.Event) -> None:
        """Pass after pass until ``stopping``. RPC failures are logged and retried on the next
        pass; Postgres failures raise."""
        await self.start()
        next_balance = 0.0
        while not stopping.is_set():
            try:
                await self.step()
                if time.monotonic() >= next_balance:
                    await self.refresh_balance()
                    next_balance = time.monotonic() + self._settings.balance_every_s
            except RpcError as exc:
                self._log.warning("pusher pass failed; retrying", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self._settings.poll_interval_s)

    async def step(self) -> None:
        """One pass: plan, track what is in flight, sign what is planned."""
        await self._plan()
        pushes = await self._outbox.open_pushes(self.chain_id)
        in_flight = [p for p in pushes if p.state != "planned"]
        if in_flight:
            await self._track(in_flight)
            pushes = await self._outbox.open_pushes(self.chain_id)
        self._rebroadcast_all = False
        planned = [p for p in pushes if p.state == "planned"]
        if planned:
            await self._sign_planned(planned)

    async def refresh_balance(self) -> int:
        balance = await self._chain.balance(self._signer.address)
        metrics.pusher_signer_balance_wei.labels(self.network.name).set(balance)
        if balance < self._settings.low_balance_wei:
            self._log.warning(
                "signer balance low", balance_wei=balance, low_wei=self._settings.low_balance_wei
            )
        return balance

    # --- plan -------------------------------------------------------------------------

    async def _plan(self) -> None:
        s = self._settings
        budget = s.max_transactions_per_minute - await self._outbox.pushes_since(
            self.chain_id, 60.0
        )
        tags: dict[str, int | None] = {}  # this pass's tagged blocks; None: unreadable
        for target in self._targets:
            if budget <= 0:
                return
            final_block = None
            if target.announce_after != "head":
                final_block = await self._tagged_block(target.announce_after, tags)
                if final_block is None:
                    continue  # held a pass longer; the other targets go on
            planned = await self._outbox.plan(
                self.chain_id,
                target.contract,
                target.spec.outbox_mode,
                window_s=s.window_s,
                max_pushes=budget,
                planner=functools.partial(self._planner, target, budget),
                final_block=final_block,
            )
            if final_block is not None:
                self._held(target, planned, final_block)
            if planned.pushes:
                budget -= planned.pushes
                self._log.info("pushes planned", contract=target.name, pushes=planned.pushes)
                crash_point("after_plan")

    async def _tagged_block(self, tag: str, tags: dict[str, int | None]) -> int | None:
        """The node's block of ``tag``, read once a pass; None (logged, counted) when the
        read fails: only the targets held for that tag wait for the next pass."""
        if tag not in tags:
            try:
                tags[tag] = await self._chain.tagged_block(tag)
            except RpcError as exc:
                tags[tag] = None
                metrics.pusher_tag_errors_total.labels(self.network.name, tag).inc()
                self._log.warning(
                    "finality tag unreadable; held targets wait", tag=tag, error=str(exc)
                )
        return tags[tag]

    def _held(self, target: PushTarget, planned: Planned, final_block: int) -> None:
        """Export and log what a finality hold kept back or dropped this pass."""
        metrics.pusher_updates_held.labels(self.network.name, target.name).set(planned.held)
        for token, version, reason in planned.dropped:
            metrics.pusher_updates_dropped_total.labels(reason).inc()
            self._log.info(
                "held update dropped: never announced",
                contract=target.name,
                token=token,
                version=version,
                reason=reason,
                final_block=final_block,
                announce_after=target.announce_after,
            )

    def _planner(
        self, target: PushTarget, max_pushes: int, waiting: Sequence[WaitingUpdate]
    ) -> list[PlannedPush]:
        return plan_calls(
            target.spec,
            waiting,
            max_range_size=self._settings.max_range_size,
            max_per_transaction=self._settings.max_uris_per_transaction,
            max_pushes=max_pushes,
        )

    # --- sign and send ----------------------------------------------------------------

    async def _sign_planned(self, pushes: Sequence[Push]) -> None:
        if not self._nonces.synced:
            pending = await self._chain.nonce(self._signer.address, "pending")
            self._nonces.sync(pending, await self._outbox.max_nonce(self.chain_id))
        base_fee = await self._chain.base_fee()
        for push in pushes:
            try:
                estimate = await self._chain.estimate_gas(
                    self._signer.address, push.contract, push.calldata
                )
            except RpcNodeError as exc:
                # The call reverts (role missing, token not minted): sending it would only
                # burn gas. Kept failed with the reason; the alert on failures fires.
                failed = await self._outbox.fail(push.id, f"call reverts: {exc.message}")
                metrics.pusher_transactions_total.labels("failed").inc()
                self._log.error(
                    "push fails at estimation", push=push.id, updates=failed, error=exc.message
                )
                continue
            gas = math.ceil(estimate * GAS_MARGIN)
            fees = self._fees.initial(base_fee)
            nonce = self._nonces.take()
            try:
                record = await self._sign_and_record(push, nonce, gas, fees)
            except BaseException:
                self._nonces.invalidate()  # the nonce may or may not be recorded: re-read
                raise
            metrics.pusher_transactions_total.labels("sent").inc()
            self._log.info(
                "push sent",
                push=push.id,
                tx=record.hash,
                nonce=nonce,
                tokens=push.token_count,
                first=push.first_token,
                last=push.last_token,
            )
            await self._broadcast(record)

    async def _sign_and_record(self, push: Push, nonce: int, gas: int, fees: Fees) -> TxRecord:
        self._check_lease()
        signed = await self._signer.sign_async(
            UnsignedTx(
                chain_id=self.chain_id,
                nonce=nonce,
                max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
                max_fee_per_gas=fees.max_fee_per_gas,
                gas=gas,
                to=push.contract,
                data=push.calldata,
            )
        )
        record = await self._outbox.record_signed(push, nonce, gas, fees, signed)
        crash_point("after_sign")
        return record

    async def _broadcast(self, record: TxRecord) -> None:
        self._check_lease()
        refused = await self._chain.send_raw(record.raw)
        if refused is None or any(k in refused.lower() for k in _KNOWN):
            await self._outbox.mark_broadcast(record.hash)
        else:
            # "nonce too low": one of ours (or another sender's) took the nonce; the next
            # pass's receipts and nonce tell which.
            self._log.info("broadcast refused", tx=record.hash, nonce=record.nonce, reason=refused)
        crash_point("after_send")

    def _check_lease(self) -> None:
        if self._fence is not None:
            self._fence()

    # --- track ------------------------------------------------------------------------

    async def _track(self, pushes: Sequence[Push]) -> None:
        head = await self._chain.head()
        # The nonce first, receipts second: a nonce consumed by one of ours then always
        # shows up as a receipt below.
        latest_nonce = await self._chain.nonce(self._signer.address, "latest")
        receipts = await self._chain.receipts([t.hash for p in pushes for t in p.txs])
        for push in pushes:
            receipt = next((receipts[t.hash] for t in push.txs if t.hash in receipts), None)
            if receipt is not None:
                await self._on_mined(push, receipt, head)
                continue
            force = self._rebroadcast_all
            if push.state == "mined":
                self._log.warning(
                    "push reorged out; sending it again",
                    push=push.id,
                    tx=push.mined_hash,
                    block=push.mined_block,
                )
                await self._outbox.unmine(push.id)
                force = True
            await self._in_flight(push, latest_nonce, force=force)

    async def _on_mined(self, push: Push, receipt: Receipt, head: int) -> None:
        if push.state != "mined" or push.mined_block_hash != receipt.block_hash:
            await self._outbox.mark_mined(
                push.id,
                tx_hash=receipt.tx_hash,
                block=receipt.block,
                block_hash=receipt.block_hash,
                gas_used=receipt.gas_used,
                effective_gas_price=receipt.effective_gas_price,
            )
            crash_point("after_mined")
        if receipt.status != 1:
            failed = await self._outbox.fail(push.id, f"reverted on chain in {receipt.tx_hash}")
            metrics.pusher_transactions_total.labels("failed").inc()
            self._log.error(
                "push reverted on chain", push=push.id, tx=receipt.tx_hash, updates=failed
            )
            return
        if head - receipt.block + 1 < self._settings.confirmations:
            return
        if await self._chain.block_hash(receipt.block) != receipt.block_hash:
            return  # the receipt raced a reorg: the next pass sees where it is now
        confirmed = await self._outbox.confirm(push.id)
        if not confirmed.update_created_at:
            return
        metrics.pusher_transactions_total.labels("confirmed").inc()
        metrics.pusher_gas_spent_wei_total.inc(receipt.gas_used * receipt.effective_gas_price)
        now = datetime.now(UTC)
        for created_at in confirmed.update_created_at:
            metrics.pusher_push_latency_seconds.observe(
                max(0.0, (now - created_at).total_seconds())
            )
        events = receipt.log_addresses.count(push.contract)
        self._log.info(
            "push confirmed",
            push=push.id,
            tx=receipt.tx_hash,
            block=receipt.block,
            updates=len(confirmed.update_created_at),
            events=events,
        )
        if not events:
            # Done all the same (the call succeeded), but marketplaces learn of new metadata
            # from the contract's events (ERC-4906 MetadataUpdate, ERC-1155 URI).
            self._log.warning(
                "push confirmed but the contract emitted no event", push=push.id, tx=receipt.tx_hash
            )

    async def _in_flight(self, push: Push, latest_nonce: int, *, force: bool) -> None:
        record = push.latest_tx
        if record is None or push.nonce is None:
            return
        if latest_nonce > push.nonce:
            # Mined nonces passed ours and no receipt of ours exists: another transaction
            # took the nonce, so none of ours can ever be mined and a new nonce is safe. Seen
            # on a few passes first: a lagging node behind a load balancer may answer the
            # nonce from one block and the receipts from an older one.
            self._consumed[push.id] = self._consumed.get(push.id, 0) + 1
            if self._consumed[push.id] >= CONSUMED_PASSES:
                self._log.warning("push nonce consumed elsewhere; re-planning", push=push.id)
                await self._outbox.release_nonce(push.id)
                self._nonces.invalidate()
                del self._consumed[push.id]
            return
        self._consumed.pop(push.id, None)
        now = datetime.now(UTC)
        age_s = (now - record.signed_at).total_seconds()
        if age_s >= self._settings.replace_after_s and await self._replace(push, record):
            return
        stale = record.broadcast_at is None or (
            (now - record.broadcast_at).total_seconds() >= REBROADCAST_S
        )
        if force or stale:
            await self._broadcast(record)

    async def _replace(self, push: Push, record: TxRecord) -> bool:
        """Sign, record and broadcast a fee-bumped copy (same nonce); False at the fee cap."""
        assert push.nonce is not None
        assert push.gas_limit is not None
        fees = self._fees.bump(record.fees, await self._chain.base_fee())
        if fees is None:
            if push.id not in self._capped:
                self._capped.add(push.id)
                self._log.warning(
                    "stuck push at the fee cap; not replacing",
                    push=push.id,
                    tx=record.hash,
                    max_fee_per_gas=record.fees.max_fee_per_gas,
                )
            return False
        replacement = await self._sign_and_record(push, push.nonce, push.gas_limit, fees)
        metrics.pusher_transactions_total.labels("replaced").inc()
        self._log.info(
            "stuck push replaced",
            push=push.id,
            old_tx=record.hash,
            tx=replacement.hash,
            nonce=push.nonce,
            max_fee_per_gas=fees.max_fee_per_gas,
            max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
        )
        await self._broadcast(replacement)
        return True
