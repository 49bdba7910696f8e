"""``dnft rerender``: render tokens again (after a rules change, a lost or failed render)."""

from __future__ import annotations

import argparse
import asyncio

from dnft.collection.bound import BoundCollection
from dnft.config import Settings, load_settings
from dnft.errors import ConfigError
from dnft.logging import configure_logging


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "rerender",
        help="recompute tokens' states and send render jobs for what has no version yet",
        description=(
            "Recompute the selected tokens' states from their events and feed values; plan a "
            "render job for each state that changed or has no version yet. A state is "
            "rendered once: with --force, states that already have a version are re-announced "
            "(the pusher still announces each version on chain once)."
        ),
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--token", type=int, action="append", help="token id (repeatable)")
    which.add_argument("--all", action="store_true", help="every token of every collection")
    parser.add_argument(
        "--collection",
        help="contract address or collection name (with --token: default the only one; "
        "alone: the whole collection)",
    )
    parser.add_argument("--force", action="store_true", help="re-announce rendered states too")
    parser.add_argument("--dry-run", action="store_true", help="count; change nothing")
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from dnft.collection.bound import load_bound_collections

    if not (args.token or args.all or args.collection):
        raise ConfigError("--token", "choose --token ID, --collection ADDR or --all")
    if args.all and args.collection:
        raise ConfigError("--all", "--all covers every collection: drop --collection")
    settings = load_settings(args.config)
    configure_logging(settings.log_level)
    bound = load_bound_collections(settings)
    name: str | None = None
    if args.collection is not None:
        wanted = args.collection.lower()
        matches = [b for b in bound if wanted in (b.contract, b.collection.name.lower())]
        if not matches:
            known = [f"{b.collection.name} ({b.contract})" for b in bound]
            raise ConfigError(
                "--collection", f"unknown collection {args.collection!r}; known: {known}"
            )
        name = matches[0].collection.name
    elif args.token:
        if len(bound) > 1:
            raise ConfigError("--collection", "several collections are configured: name one")
        name = bound[0].collection.name
    return asyncio.run(_run(settings, bound, name, args))


async def _run(
    settings: Settings, bound: list[BoundCollection], name: str | None, args: argparse.Namespace
) -> int:
    from dnft.cli.console import confirm
    from dnft.db import create_pool
    from dnft.kafka import AsyncProducer
    from regenerator.planner import Planner
    from regenerator.rerender import Selection, describe, rerender

    selection = Selection(name, tuple(args.token or ()))
    scope = (
        "every collection"
        if name is None
        else f"{name} tokens {list(selection.tokens)}"
        if selection.tokens
        else f"every token of {name}"
    )
    if not args.dry_run and not confirm(f"Re-render {scope}?", assume_yes=args.yes):
        print("nothing done")
        return 1
    pool = await create_pool(settings.postgres)
    producer = AsyncProducer(settings.kafka, client_id=f"{settings.kafka.client_id}-rerender")
    await producer.start()
    try:
        planner = Planner(pool, producer, bound, jobs_topic=settings.kafka.topics.render_jobs)
        report = await rerender(pool, planner, selection, force=args.force, dry_run=args.dry_run)
    finally:
        await producer.close()
        await pool.close()
    print(f"rerender {scope}{' (dry run: nothing changed)' if args.dry_run else ''}:")
    for line in describe(report):
        print(f"  {line}")
    return 0
