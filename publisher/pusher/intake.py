"""Metadata updates from Kafka into the outbox; the caller commits offsets afterwards.

Only updates of configured (chain, contract) pairs are recorded; others belong to another
pusher (or to none) and are skipped. Recording is idempotent, so a redelivered batch is a
no-op and the offsets may be committed once ``handle`` returns.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

import structlog

from dnft.stream import Decoded
from publisher.pusher.crashpoints import crash_point
from publisher.pusher.outbox import Outbox, UpdateRecord

log = structlog.get_logger("dnft.pusher.intake")


def update_record(message: Mapping[str, Any]) -> UpdateRecord:
    """A validated ``dnft.metadata.update.v1`` body as an outbox row."""
    return UpdateRecord(
        chain_id=int(message["chain_id"]),
        contract=str(message["contract"]).lower(),
        token_id=int(message["token_id"]),
        version=int(message["version"]),
        metadata_uri=str(message["metadata_uri"]),
        metadata_cid=str(message["metadata_cid"]),
        created_at=datetime.fromisoformat(str(message["created_at"])),
    )


class Intake:
    def __init__(self, outbox: Outbox, targets: Collection[tuple[int, str]]) -> None:
        self._outbox = outbox
        self._targets = set(targets)  # (chain_id, lowercase contract)
        self.seen = 0  # messages handled (duplicates and other contracts' included)
        self.recorded = 0
        self.skipped = 0

    async def handle(self, batch: Sequence[Decoded[dict[str, Any]]]) -> None:
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
