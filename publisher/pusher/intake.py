"""Metadata updates from Kafka into the outbox; the caller commits offsets afterwards.

Only updates of configured (chain, contract) pairs are considered; others belong to another
pusher (or to none) and are skipped. The pusher trusts Postgres, not Kafka: an update is
recorded only if ``token_versions`` holds that version of that token, for a collection bound
to the update's chain and contract, with the same metadata CID, and only if the outbox holds
no newer version of that token in that collection. Anything else (a version never rendered,
a CID that differs: a forged or corrupted message; an old but real version written or
replayed after a newer one, which a URI-carrying push would write over the newer URI: a
rollback) is refused, logged with its reason and counted in
``dnft_pusher_updates_refused_total{reason}``; a refused update is acknowledged like a
recorded one, since retrying it cannot change the answer. The check and
the insert are one statement (:meth:`Outbox.record_updates`). Recording is idempotent, so a
redelivered batch is a no-op and the offsets may be committed once ``handle`` returns; the one
exception: a version a finality hold dropped (its state had moved on) that is announced again
while still the token's newest (its state came back) waits again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields

import structlog

from dnft import metrics
from dnft.collection import BoundCollection
from dnft.errors import ConfigError
from dnft.messages import MetadataUpdate
from dnft.stream import Decoded
from publisher.pusher.crashpoints import crash_point
from publisher.pusher.outbox import Outbox
from publisher.pusher.rows import RefusedReason, UpdateRecord
from publisher.pusher.sender import PushTarget

log = structlog.get_logger("dnft.pusher.intake")

_WHY: dict[RefusedReason, str] = {
    "unknown_version": "it matches no recorded version",
    "cid_mismatch": "it matches no recorded version",
    "superseded": "a newer version of the token is already recorded (a rollback)",
}

# (chain id, lowercase contract) -> the names of the collections bound to that contract.
Bindings = Mapping[tuple[int, str], Sequence[str]]


def update_record(update: MetadataUpdate) -> UpdateRecord:
    """A decoded ``dnft.metadata.update.v1`` as an outbox row: the fields it shares with it
    (its contract is lowercase)."""
    return UpdateRecord(**{f.name: getattr(update, f.name) for f in fields(UpdateRecord)})


def trusted_bindings(
    targets: Iterable[tuple[int, PushTarget]], bound: Sequence[BoundCollection]
) -> dict[tuple[int, str], tuple[str, ...]]:
    """For each push target (with its chain id), the collections bound to its contract
    (``bound``: from the ``collections`` rules files). Raises ConfigError for a target no
    collection is bound to: none of its updates could ever be trusted."""
    out: dict[tuple[int, str], tuple[str, ...]] = {}
    for chain_id, target in targets:
        key = (chain_id, target.contract)
        names = tuple(sorted(b.collection.name for b in bound if (b.chain_id, b.contract) == key))
        if not names:
            raise ConfigError(
                "pusher.collections",
                f"contract {target.name!r} has no collection in 'collections': the pusher "
                "announces only versions recorded for a collection bound to its contract",
            )
        out[key] = names
    return out


class Intake:
    """Records the updates of the contracts in ``bindings`` that match a recorded version."""

    def __init__(self, outbox: Outbox, bindings: Bindings) -> None:
        self._outbox = outbox
        self._bindings = {key: tuple(names) for key, names in bindings.items()}
        self.seen = 0  # messages handled (duplicates, refused and other contracts' included)
        self.recorded = 0
        self.skipped = 0
        self.refused = 0

    async def handle(self, batch: Sequence[Decoded[MetadataUpdate]]) -> None:
        """Check and record the batch's updates durably (one statement); returns when
        committed."""
        records = [update_record(d.value) for d in batch]
        self.seen += len(records)
        mine = [r for r in records if (r.chain_id, r.contract) in self._bindings]
        self.skipped += len(records) - len(mine)
        result = await self._outbox.record_updates(mine, self._bindings)
        self.recorded += result.new
        self.refused += len(result.refused)
        for record, reason in result.refused:
            metrics.pusher_updates_refused_total.labels(reason).inc()
            log.warning(
                f"metadata update refused: {_WHY[reason]}",
                reason=reason,
                chain_id=record.chain_id,
                contract=record.contract,
                token_id=str(record.token_id),
                version=record.version,
                metadata_cid=record.metadata_cid,
            )
        if result.new:
            log.debug(
                "updates recorded",
                new=result.new,
                duplicates=len(mine) - result.new - len(result.refused),
            )
        crash_point("after_record")
