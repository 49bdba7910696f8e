"""The pusher's outbox as ``dnft status`` shows it: updates not yet confirmed on chain.

The outbox tables come from migration 0004; a database where they are missing (or shaped
otherwise) is reported as such rather than failing.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from dnft.errors import DnftError


class OutboxUnavailable(DnftError, RuntimeError):
    """The outbox tables are not there (migration 0004 not applied) or not as expected."""


@dataclass(frozen=True, slots=True)
class PusherPending:
    pending_updates: int  # recorded, neither confirmed on chain nor failed
    oldest_pending_s: float | None
    failed_updates: int
    open_pushes: int  # planned, sent or mined, not yet confirmed


async def pusher_pending(conn: asyncpg.Connection) -> PusherPending:
    """Raises OutboxUnavailable when the outbox tables are missing or not as expected."""
    present = await conn.fetchval(
        "select to_regclass('pusher_updates') is not null and "
        "to_regclass('pusher_pushes') is not null"
    )
    if not present:
        raise OutboxUnavailable("no pusher outbox tables (run `dnft migrate`)")
    try:
        row = await conn.fetchrow(
            "select count(*) filter (where confirmed_at is null and failed_at is null "
            "and dropped_at is null) as pending, extract(epoch from now() - min(created_at) "
            "filter (where confirmed_at is null and failed_at is null and dropped_at is null)) "
            "as oldest, "
            "count(*) filter (where failed_at is not null) as failed from pusher_updates"
        )
        pushes = await conn.fetchval(
            "select count(*) from pusher_pushes where state in ('planned', 'sent', 'mined')"
        )
    except asyncpg.PostgresError as exc:
        raise OutboxUnavailable(f"pusher outbox not as expected: {exc}") from exc
    assert row is not None
    oldest = row["oldest"]
    return PusherPending(
        pending_updates=int(row["pending"]),
        oldest_pending_s=None if oldest is None else float(oldest),
        failed_updates=int(row["failed"]),
        open_pushes=int(pushes),
    )
