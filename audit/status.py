"""Where every stage of the pipeline stands, for ``dnft status``: each network's indexer (chain
head vs checkpoint), each consumer group on its topics (committed vs end offsets), the render
backlog, the pusher's outbox and the oracle feeds' last rounds.

:func:`collect_status` asks every source at once; a source that cannot be read becomes
``Unreachable(reason)`` and the rest is still gathered. Reads only: no consumer joins a
group, nothing is committed or written.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg

from dnft.config import Settings
from dnft.db import redact_dsn
from dnft.status import TopicLag, Unreachable, consumer_lags, probe
from indexer import CheckpointRow, chain_head, checkpoints

if TYPE_CHECKING:
    from oracle_feeds.status import FeedRound
    from publisher.pusher.status import PusherPending
    from regenerator.status import RenderBacklog

__all__ = ["NetworkStatus", "Status", "collect_status", "consumer_groups"]


@dataclass(slots=True)
class NetworkStatus:
    name: str
    chain_id: int
    head: int | Unreachable
    checkpoint: CheckpointRow | Unreachable | None  # None: never checkpointed

    @property
    def lag_blocks(self) -> int | None:
        head, mark = self.head, self.checkpoint
        if isinstance(head, Unreachable) or isinstance(mark, Unreachable) or mark is None:
            return None
        return max(0, head - mark.block_number)


@dataclass(slots=True)
class Status:
    networks: list[NetworkStatus]
    consumers: list[TopicLag] | Unreachable
    render: RenderBacklog | Unreachable
    pusher: PusherPending | Unreachable
    feeds: dict[str, FeedRound | None] | Unreachable  # None: configured, never published
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "indexer": [_network_dict(n) for n in self.networks],
            "consumers": _jsonable(self.consumers),
            "render": _jsonable(self.render),
            "pusher": _jsonable(self.pusher),
            "oracle": (
                _jsonable(self.feeds)
                if isinstance(self.feeds, Unreachable)
                else [
                    {"feed_id": fid, **(asdict(r) if r else {"round_id": None})}
                    for fid, r in self.feeds.items()
                ]
            ),
            "notes": list(self.notes),
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, Unreachable):
        return {"unreachable": value.reason}
    if isinstance(value, list):
        return [asdict(v) for v in value]
    if isinstance(value, dict):
        return {k: None if v is None else asdict(v) for k, v in value.items()}
    return asdict(value)


def _network_dict(n: NetworkStatus) -> dict[str, Any]:
    out: dict[str, Any] = {"network": n.name, "chain_id": n.chain_id}
    out["head"] = _jsonable(n.head) if isinstance(n.head, Unreachable) else n.head
    if isinstance(n.checkpoint, Unreachable):
        out["checkpoint"] = _jsonable(n.checkpoint)
    else:
        out["checkpoint"] = None if n.checkpoint is None else n.checkpoint.block_number
        out["checkpoint_updated_at"] = (
            None if n.checkpoint is None else n.checkpoint.updated_at.isoformat()
        )
    out["lag_blocks"] = n.lag_blocks
    return out


def consumer_groups(settings: Settings) -> dict[str, list[str]]:
    """Each running stage's consumer group and the topics it reads."""
    topics = settings.kafka.topics
    groups: dict[str, list[str]] = {}
    if settings.collections:  # the regenerator refuses to start without one
        regen = settings.regenerator
        groups[regen.planner_group] = [topics.chain_events, topics.oracle_observations]
        groups[regen.render_group] = [topics.render_jobs]
    if settings.pusher.collections:  # likewise the pusher
        groups[settings.pusher.group] = [topics.metadata_updates]
    return groups


async def collect_status(settings: Settings) -> Status:
    """Ask every source at once; each failure becomes Unreachable. Reads only; never raises
    for a source that cannot be read."""
    # Each daemon's status module, not its package: a status read needs none of the daemon.
    from oracle_feeds.status import feed_rounds
    from publisher.pusher.status import pusher_pending
    from regenerator.status import render_backlog

    groups = consumer_groups(settings)

    async def postgres() -> tuple[Any, Any, Any, Any]:
        conn = await probe(asyncpg.connect(settings.postgres.dsn, timeout=5))
        if isinstance(conn, Unreachable):
            down = Unreachable(f"Postgres at {redact_dsn(settings.postgres.dsn)}: {conn.reason}")
            return down, down, down, down
        try:
            return (
                await probe(checkpoints(conn)),
                await probe(render_backlog(conn)),
                await probe(pusher_pending(conn)),
                await probe(feed_rounds(conn)),
            )
        finally:
            await conn.close()

    async def kafka() -> list[TopicLag] | Unreachable:
        if not groups:
            return []
        return await probe(asyncio.to_thread(consumer_lags, settings.kafka, groups))

    heads_task = asyncio.gather(*(probe(chain_head(n)) for n in settings.networks))
    heads, lags, (marks, backlog, pending, rounds) = await asyncio.gather(
        heads_task, kafka(), postgres()
    )
    networks = [
        NetworkStatus(
            n.name,
            n.chain_id,
            head,
            marks if isinstance(marks, Unreachable) else marks.get(n.name),
        )
        for n, head in zip(settings.networks, heads, strict=True)
    ]
    feeds: dict[str, FeedRound | None] | Unreachable
    if isinstance(rounds, Unreachable):
        feeds = rounds
    else:
        published = [f.id for f in settings.feeds if f.publish]
        feeds = {fid: rounds.get(fid) for fid in sorted({*published, *rounds})}
    status = Status(networks, lags, backlog, pending, feeds)
    if not groups:
        status.notes.append("no consumer group: no collections and no pusher collections set")
    if isinstance(lags, list) and any(lag.past_end_partitions for lag in lags):
        status.notes.append(
            "some committed offsets are past the end offsets the broker reports: it "
            "under-reports partition ends (tansu does), so these lags read low"
        )
    return status
