"""Metadata updates from Kafka into the outbox; the caller commits offsets afterwards.

Only updates of configured (chain, contract) pairs are recorded; others belong to another
pusher (or to none) and are skipped. Recording is idempotent, so a redelivered batch is a
no-op and the offsets may be committed once ``handle`` returns.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import fields

import structlog

from dnft.messages import MetadataUpdate
from dnft.stream import Decoded
from publisher.pusher.crashpoints import crash_point
from publisher.pusher.outbox import Outbox, UpdateRecord

log = structlog.get_logger("dnft.pusher.intake")


def update_record(update: MetadataUpdate) -> UpdateRecord:
    """A decoded ``dnft.metadata.update.v1`` as an outbox row: the fields it shares with it
    (its contract is lowercase)."""
    return UpdateRecord(**{f.name: getattr(update, f.name) for f in fields(UpdateRecord)})


class Intake:
    def __init__(self, outbox: Outbox, targets: Collection[tuple[int, str]]) -> None:
        self._outbox = outbox
        self._targets = set(targets)  # (chain_id, lowercase contract)
        self.seen = 0  # messages handled (duplicates and other contracts' included)
        self.recorded = 0
        self.skipped = 0

    async def handle(self, batch: Sequence[Decoded[MetadataUpdate]]) -> None:
        """Record the batch's updates durably (one statement); returns when committed."""
        records = [update_record(d.value) for d in batch]
        self.seen += len(records)
        mine = [r for r in records if (r.chain_id, r.contract) in self._targets]
        self.skipped += len(records) - len(mine)
        new = await self._outbox.record_updates(mine)
        self.recorded += new
        if new:
            log.debug("updates recorded", new=new, duplicates=len(mine) - new)
        crash_point("after_record")
