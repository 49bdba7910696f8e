"""``dnft replay``: publish a block range again, or move a consumer group back.

Two forms:

- ``dnft replay --network N --from-block A --to-block B [--contract X]`` re-reads the chain
  and re-publishes with the same event ids (downstream a no-op unless state differs);
- ``dnft replay --consumer regenerator --to-timestamp T | --to-offset O`` resets a consumer
  group's offsets, refusing while the group has members unless ``--force``.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from datetime import datetime

from dnft.cli.console import Commands, add_command
from dnft.config import Settings, load_settings
from dnft.errors import ConfigError
from dnft.kafka.groups import OffsetMove
from dnft.kafka.recorded import check_recorded_partitioner
from dnft.logging import configure_logging

# Consumer name -> (group, topics). One place that knows which daemon reads what.
CONSUMERS = ("regenerator", "render", "pusher")


def consumer_group(settings: Settings, name: str) -> tuple[str, list[str]]:
    topics = settings.kafka.topics
    if name == "regenerator":
        return settings.regenerator.planner_group, [topics.chain_events, topics.oracle_observations]
    if name == "render":
        return settings.regenerator.render_group, [topics.render_jobs]
    if name == "pusher":
        return settings.pusher.group, [topics.metadata_updates]
    raise ConfigError("--consumer", f"unknown consumer {name!r}; known: {list(CONSUMERS)}")


def register(sub: Commands) -> None:
    parser = add_command(sub, "replay", __doc__, _main)
    chain = parser.add_argument_group("re-publish a block range")
    chain.add_argument("--network", help="network name from dnft.yaml")
    chain.add_argument("--from-block", type=int)
    chain.add_argument("--to-block", type=int)
    chain.add_argument(
        "--contract", action="append", default=[], help="contract name or address (repeatable)"
    )
    chain.add_argument(
        "--allow-unfinalized",
        action="store_true",
        help="also replay blocks the confirmation policy does not treat as final yet",
    )
    group = parser.add_argument_group("reset a consumer group")
    group.add_argument("--consumer", choices=CONSUMERS)
    target = group.add_mutually_exclusive_group()
    target.add_argument("--to-timestamp", help="ISO-8601 time or epoch milliseconds")
    target.add_argument("--to-offset", type=int, help="this offset on every partition")
    target.add_argument("--to-earliest", action="store_true")
    target.add_argument("--to-latest", action="store_true")
    group.add_argument(
        "--force",
        action="store_true",
        help="skip the active-members check (the broker still refuses while members remain)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="show what would happen; change nothing"
    )
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")


def _main(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    configure_logging(settings.log_level)
    if args.consumer and args.network:
        raise ConfigError(
            "--consumer", "use either --network (chain) or --consumer (group), not both"
        )
    if args.consumer:
        return _reset_group(settings, args)
    if not (args.network and args.from_block is not None and args.to_block is not None):
        raise ConfigError(
            "--network", "give --network, --from-block and --to-block (or --consumer ...)"
        )
    return asyncio.run(_replay_chain(settings, args))


async def _replay_chain(settings: Settings, args: argparse.Namespace) -> int:
    from dnft.cli.console import confirm
    from dnft.kafka import AsyncProducer
    from indexer import replay_range

    settings.network(args.network)  # unknown names fail before anything starts
    question = (
        f"Re-publish every event of blocks {args.from_block}..{args.to_block} on "
        f"{args.network} to {settings.kafka.topics.chain_events}?"
    )
    if not args.dry_run and not confirm(question, assume_yes=args.yes):
        print("nothing done")
        return 1
    producer = None
    if not args.dry_run:
        await check_recorded_partitioner(settings.postgres, settings.kafka.partitioner)
        producer = AsyncProducer(settings.kafka, client_id=f"{settings.kafka.client_id}-replay")
        await producer.start()
    try:
        report = await replay_range(
            settings,
            args.network,
            args.from_block,
            args.to_block,
            producer=producer,
            contracts=args.contract,
            allow_unfinalized=args.allow_unfinalized,
        )
    finally:
        if producer is not None:
            await producer.close()
    verb = "published (acknowledged)" if report.published else "would publish (dry run)"
    print(
        f"{report.network} blocks {report.from_block}..{report.to_block}: {verb} "
        f"{report.events} events {dict(sorted(report.by_contract.items()))}"
        + (f", {report.undecodable} undecodable logs skipped" if report.undecodable else "")
    )
    return 0


def _timestamp_ms(text: str) -> int:
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError("--to-timestamp", f"{text!r} is neither ISO-8601 nor epoch ms") from None
    if moment.tzinfo is None:
        raise ConfigError("--to-timestamp", f"{text!r} has no time zone (add Z or +00:00)")
    return int(moment.timestamp() * 1000)


def _reset_group(settings: Settings, args: argparse.Namespace) -> int:
    from dnft.cli.console import confirm
    from dnft.kafka.groups import Target, apply_reset, plan_reset

    group, topics = consumer_group(settings, args.consumer)
    if args.to_timestamp is not None:
        target = Target(timestamp_ms=_timestamp_ms(args.to_timestamp))
    elif args.to_offset is not None:
        target = Target(offset=args.to_offset)
    elif args.to_earliest or args.to_latest:
        target = Target(earliest=args.to_earliest, latest=args.to_latest)
    else:
        raise ConfigError(
            "--to-timestamp", "choose --to-timestamp, --to-offset, --to-earliest or --to-latest"
        )
    moves = plan_reset(settings.kafka, group, topics, target)
    _print_moves(group, moves)
    if args.dry_run:
        print("dry run: nothing changed")
        return 0
    if not confirm(f"Move the offsets of consumer group {group!r} as above?", assume_yes=args.yes):
        print("nothing done")
        return 1
    apply_reset(settings.kafka, group, moves, force=args.force)
    print(f"consumer group {group!r}: {len(moves)} partition(s) moved")
    return 0


def _print_moves(group: str, moves: Sequence[OffsetMove]) -> None:
    print(f"consumer group {group!r}:")
    for m in moves:
        committed = "-" if m.committed is None else m.committed
        print(f"  {m.topic}[{m.partition}]: {committed} -> {m.target}")
