"""``dnft status``: every stage's lag at a glance, as one table (or ``--json``).

Stages: each network's indexer (chain head vs checkpoint), each consumer group on its topics
(committed vs end offsets), the render backlog, the pusher's outbox and the oracle feeds'
last rounds. A source that cannot be read shows as ``unreachable: reason``; the command
still prints everything else and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from dnft.config import Settings, load_settings
from dnft.db import redact_dsn
from dnft.status import TopicLag, Unreachable, consumer_lags, probe

if TYPE_CHECKING:
    from indexer.status import CheckpointRow
    from oracle_feeds.status import FeedRound
    from publisher.pusher.status import PusherPending
    from regenerator.status import RenderBacklog

HEADER = ("STAGE", "ITEM", "POSITION", "LAG")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("status", help="lag of every stage at a glance")
    parser.add_argument("--json", action="store_true", help="print the status as JSON")
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    status = asyncio.run(collect(settings))
    if args.json:
        sys.stdout.write(orjson.dumps(status.as_dict(), option=orjson.OPT_INDENT_2).decode())
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render(status))
    return 0


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


async def collect(settings: Settings) -> Status:
    """Ask every source at once; each failure becomes Unreachable. Reads only."""
    # Imported here: they pull in asyncpg and aiohttp, which most dnft commands never need.
    import asyncpg

    from indexer.status import chain_head, checkpoints
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


def render(status: Status) -> str:
    rows: list[tuple[str, str, str, str]] = []
    for n in status.networks:
        rows.append(("indexer", n.name, *_network_cells(n)))
    if isinstance(status.consumers, Unreachable):
        rows.append(("consumers", "kafka", str(status.consumers), ""))
    for lag in status.consumers if isinstance(status.consumers, list) else []:
        rows.append(("consumer", f"{lag.group} <- {lag.topic}", *_lag_cells(lag)))
    rows.append(("render", "backlog", *_backlog_cells(status.render)))
    rows.append(("pusher", "outbox", *_pusher_cells(status.pusher)))
    if isinstance(status.feeds, Unreachable):
        rows.append(("oracle", "feeds", str(status.feeds), ""))
    else:
        for fid, r in status.feeds.items():
            rows.append(("oracle", fid, *_feed_cells(r)))
    widths = [max(len(row[i]) for row in [HEADER, *rows]) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3]
        for row in [HEADER, *rows]
    ]
    lines.extend(f"note: {note}" for note in status.notes)
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _network_cells(n: NetworkStatus) -> tuple[str, str]:
    head = str(n.head) if isinstance(n.head, Unreachable) else f"head {n.head}"
    if isinstance(n.checkpoint, Unreachable):
        mark = f"checkpoint {n.checkpoint}"
    elif n.checkpoint is None:
        mark = "no checkpoint yet"
    else:
        mark = f"checkpoint {n.checkpoint.block_number}"
    lag = "" if n.lag_blocks is None else f"{n.lag_blocks} blocks"
    return f"{head}, {mark}", lag


def _lag_cells(lag: TopicLag) -> tuple[str, str]:
    if not lag.exists:
        return "topic does not exist", ""
    committed = "no commits" if lag.committed is None else f"committed {lag.committed}"
    position = f"{committed} of end {lag.end} ({lag.partitions} partition(s))"
    if lag.committed is not None and lag.uncommitted_partitions:
        position += f", {lag.uncommitted_partitions} never committed"
    return position, f"{lag.lag} records"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _backlog_cells(backlog: RenderBacklog | Unreachable) -> tuple[str, str]:
    if isinstance(backlog, Unreachable):
        return str(backlog), ""
    position = f"{backlog.unsent_jobs} unsent job(s)"
    if backlog.oldest_unsent_s is not None:
        position += f", oldest {_age(backlog.oldest_unsent_s)}"
    return position, f"{backlog.tokens_without_version} token(s) await a render"


def _pusher_cells(pending: PusherPending | Unreachable) -> tuple[str, str]:
    if isinstance(pending, Unreachable):
        return str(pending), ""
    position = f"{pending.open_pushes} open push(es), {pending.failed_updates} failed update(s)"
    lag = f"{pending.pending_updates} update(s) pending"
    if pending.oldest_pending_s is not None:
        lag += f", oldest {_age(pending.oldest_pending_s)}"
    return position, lag


def _feed_cells(r: FeedRound | None) -> tuple[str, str]:
    if r is None or r.round_id == 0:
        return "never published", ""
    position = f"round {r.round_id}" + (" (next one pending)" if r.pending else "")
    return position, "" if r.age_s is None else f"{_age(r.age_s)} since published"
