"""The demo's holders: now and then one feeds a token (``Fed``) or sets its mood (``TraitSet``).

Tokens are visited in a shuffled round, so every token gets attention within a round; each
transaction is sent by the token's owner (``setTrait`` is owner-only) and waited for. Seeded:
the same seed sends the same sequence.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import structlog

from dnft.errors import DnftError

log = structlog.get_logger("demo.traffic")

MOODS = ("calm", "playful", "sleepy", "curious", "grumpy", "proud")
# A feed is the common action: stages grow with the number of feeds.
FEED_SHARE = 0.75
MAX_FEED_WEI = 10**15  # 0.001 ETH


@dataclass(slots=True)
class TrafficStats:
    fed: int = 0
    traits: int = 0
    failed: int = 0
    last_block: int = 0
    last: str = ""


@dataclass(frozen=True, slots=True)
class Action:
    token_id: int
    kind: str  # "feed" | "trait"
    amount: int = 0
    mood: str = ""

    def describe(self) -> str:
        if self.kind == "feed":
            return f"#{self.token_id} fed {self.amount} wei"
        return f"#{self.token_id} mood -> {self.mood}"


def plan_actions(token_ids: list[int], seed: int) -> Any:
    """An endless, seeded sequence of actions: shuffled rounds over ``token_ids``."""
    rng = random.Random(seed)  # noqa: S311 (a repeatable simulation, not a secret)
    while True:
        order = list(token_ids)
        rng.shuffle(order)
        for token_id in order:
            if rng.random() < FEED_SHARE:
                yield Action(token_id, "feed", amount=rng.randint(1, MAX_FEED_WEI))
            else:
                yield Action(token_id, "trait", mood=rng.choice(MOODS))


@dataclass
class Traffic:
    """Sends actions to the collection every ``every_s`` seconds until stopped.

    ``owners`` maps token id -> the anvil dev account index that owns it. A failed transaction
    is logged and counted, and the traffic goes on.
    """

    rpc_url: str
    collection: str
    owners: dict[int, int]
    _: KW_ONLY
    every_s: float
    seed: int
    stats: TrafficStats = field(default_factory=TrafficStats)

    async def run(self, stopping: asyncio.Event) -> None:
        """Send until ``stopping`` is set; returns after the transaction in flight is mined."""
        from web3 import AsyncHTTPProvider, AsyncWeb3

        from dnft.contracts import DevSigner, anvil_dev_key, at

        w3 = AsyncWeb3(AsyncHTTPProvider(self.rpc_url))
        # Deriving a dev key runs PBKDF2 (tens of ms): off the event loop.
        keys = {
            index: await asyncio.to_thread(anvil_dev_key, index)
            for index in sorted(set(self.owners.values()))
        }
        signers = {index: DevSigner(key) for index, key in keys.items()}
        contract = at(w3, "DynamicCollection", self.collection)
        actions = plan_actions(sorted(self.owners), self.seed)
        try:
            while not stopping.is_set():
                action: Action = next(actions)
                signer = signers[self.owners[action.token_id]]
                if action.kind == "feed":
                    data = contract.encode_abi("feed", [action.token_id])
                    tx: Any = {"to": contract.address, "data": data, "value": action.amount}
                else:
                    data = contract.encode_abi("setTrait", [action.token_id, "mood", action.mood])
                    tx = {"to": contract.address, "data": data}
                try:
                    receipt = await signer.transact(w3, tx, wait_s=30)
                except DnftError as exc:
                    self.stats.failed += 1
                    log.warning("transaction failed", action=action.describe(), error=str(exc))
                else:
                    if action.kind == "feed":
                        self.stats.fed += 1
                    else:
                        self.stats.traits += 1
                    self.stats.last_block = max(self.stats.last_block, receipt["blockNumber"])
                    self.stats.last = action.describe()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), self.every_s)
        finally:
            await w3.provider.disconnect()
