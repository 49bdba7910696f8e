"""Demo-like traffic in a chaos run: the holders feed their tokens, set moods, mint and
transfer, one transaction every ~0.3 s, straight to anvil (never through the faulty proxy).
Reorgs undo some of it: the traffic asks the chain again rather than trusting its book."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from typing import Any

from eth_typing import HexStr
from web3.types import TxParams, Wei

from dnft.contracts import DevSigner, TransactionReverted
from dnft.errors import DnftError

# Holders mint up to this many tokens: every token re-renders when the price changes bucket,
# so an unbounded collection would make later faults' recoveries slower than earlier ones'.
MAX_TOKENS = 40
CANARY_TOKEN = 1  # the traffic leaves it alone: only the canary feeds it
MOODS = ("calm", "playful", "sleepy", "curious", "grumpy", "proud")


async def send(w3: Any, collection: Any, signer: DevSigner, data: str, value: int = 0) -> Any:
    """One transaction to the collection, its receipt awaited (10 s at most)."""
    tx: TxParams = {"to": collection.address, "data": HexStr(data), "value": Wei(value)}
    return await signer.transact(w3, tx, wait_s=10)


class Traffic:
    """The holders' side of :class:`tests.chaos.harness.ChaosWorld` (a mixin: the world
    sets these attributes)."""

    seed: int
    w3: Any
    collection: Any
    owners: dict[int, int]  # token -> holder index, as the traffic believes
    signers: dict[int, DevSigner]
    canary_signer: DevSigner | None
    traffic_stats: Counter[str]
    traffic_paused: asyncio.Event
    _stopping: asyncio.Event

    async def _traffic(self) -> None:
        """Holders feed tokens, set moods, mint and transfer, one transaction every ~0.3 s."""
        rng = random.Random(self.seed + 1)
        while not self._stopping.is_set():
            if self.traffic_paused.is_set():
                await asyncio.sleep(0.2)
                continue
            tokens = [t for t in self.owners if t != CANARY_TOKEN]
            token = rng.choice(tokens)
            holder = self.owners[token]
            signer = self.signers[holder]
            roll = rng.random()
            try:
                if roll < 0.6:
                    amount = rng.randint(1, 10**15)
                    data = self.collection.encode_abi("feed", [token])
                    await self._send(signer, data, value=amount)
                    self.traffic_stats["fed"] += 1
                elif roll < 0.8:
                    data = self.collection.encode_abi(
                        "setTrait", [token, "mood", rng.choice(MOODS)]
                    )
                    await self._send(signer, data)
                    self.traffic_stats["traits"] += 1
                elif roll < 0.9 and len(self.owners) < MAX_TOKENS:
                    receipt = await self._send(
                        signer, self.collection.encode_abi("mint", [signer.address])
                    )
                    minted = self.collection.events.Transfer().process_receipt(receipt)
                    for log in minted:
                        self.owners[int(log["args"]["tokenId"])] = holder
                    self.traffic_stats["mints"] += 1
                else:
                    other = rng.choice([h for h in self.signers if h != holder])
                    data = self.collection.encode_abi(
                        "transferFrom", [signer.address, self.signers[other].address, token]
                    )
                    await self._send(signer, data)
                    self.owners[token] = other
                    self.traffic_stats["transfers"] += 1
            except TransactionReverted:
                # A reorg undid a mint or transfer this loop counted on: ask the chain.
                self.traffic_stats["reverted"] += 1
                await self._refresh_owner(token)
            except DnftError:
                self.traffic_stats["failed"] += 1
                signer._nonce = None  # a reorg dropped it, or the node refused it: re-read
            await asyncio.sleep(rng.uniform(0.1, 0.5))

    async def _send(self, signer: DevSigner, data: str, value: int = 0) -> Any:
        return await send(self.w3, self.collection, signer, data, value)

    async def _refresh_owner(self, token: int) -> None:
        with contextlib.suppress(Exception):
            owner = await self.collection.functions.ownerOf(token).call()
            by_address = {s.address.lower(): i for i, s in self.signers.items()}
            if owner.lower() in by_address:
                self.owners[token] = by_address[owner.lower()]
            else:
                self.owners.pop(token, None)

    def reset_nonces(self) -> None:
        """After a reorg: transactions the reorg dropped left gaps in the local nonces."""
        for signer in [*self.signers.values(), self.canary_signer]:
            if signer is not None:
                signer._nonce = None
