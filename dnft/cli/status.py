"""``dnft status``: every stage's lag at a glance, as one table (or ``--json``).

The stages are gathered by ``audit.collect_status``; this module prints them. A source that
cannot be read shows as ``unreachable: reason``; the command still prints everything else
and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

import orjson

from dnft.cli.console import Commands, add_command
from dnft.config import load_settings
from dnft.status import TopicLag, Unreachable

if TYPE_CHECKING:
    from audit import NetworkStatus, Status
    from oracle_feeds.status import FeedRound
    from publisher.pusher.status import PusherPending
    from regenerator.status import RenderBacklog

HEADER = ("STAGE", "ITEM", "POSITION", "LAG")


def register(sub: Commands) -> None:
    parser = add_command(sub, "status", __doc__, _main)
    parser.add_argument("--json", action="store_true", help="print the status as JSON")


def _main(args: argparse.Namespace) -> int:
    # Imported here: the audit pulls in asyncpg, aiohttp and kafka, which most commands never
    # need.
    from audit import collect_status

    settings = load_settings(args.config)
    status = asyncio.run(collect_status(settings))
    if args.json:
        sys.stdout.write(orjson.dumps(status.as_dict(), option=orjson.OPT_INDENT_2).decode())
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render(status))
    return 0


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
