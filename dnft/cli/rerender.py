"""``dnft rerender``: render tokens again (after a rules change, a lost or failed render).

Recomputes the selected tokens' states from their events and feed values and plans a render job
for each state that changed or has no version yet. A state is rendered once: with ``--force``,
states that already have a version are re-announced (the pusher still announces each version on
chain once).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING

from dnft.cli.console import Commands, add_command
from dnft.collection import BoundCollection
from dnft.config import Settings, load_settings
from dnft.errors import ConfigError
from dnft.logging import configure_logging

if TYPE_CHECKING:
    from regenerator import RerenderReport


def register(sub: Commands) -> None:
    parser = add_command(sub, "rerender", __doc__, _main)
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


def _main(args: argparse.Namespace) -> int:
    from dnft.collection import load_bound_collections

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
    return _run(settings, bound, name, args)


def _run(
    settings: Settings, bound: list[BoundCollection], name: str | None, args: argparse.Namespace
) -> int:
    from dnft.cli.console import confirm
    from regenerator import Selection, rerender_selection

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
    report = asyncio.run(
        rerender_selection(settings, bound, selection, force=args.force, dry_run=args.dry_run)
    )
    print(f"rerender {scope}{' (dry run: nothing changed)' if args.dry_run else ''}:")
    for line in _describe(report):
        print(f"  {line}")
    return 0


def _describe(report: RerenderReport) -> list[str]:
    """Human-readable lines for the command's output."""
    verb = "would send" if report.dry_run else "sent"
    lines = [
        f"selected tokens: {report.selected}",
        f"state changed (new version to render): {report.state_changed}",
        f"current state not the newest version (render again): {report.resent_missing}",
        f"current state is the newest version, re-announced (--force): {report.resent_rendered}",
    ]
    if report.unknown:
        lines.append(f"unknown tokens (no state yet): {report.unknown}")
    total = report.state_changed + report.resent_missing + report.resent_rendered
    lines.append(f"render jobs {verb}: {report.sent if not report.dry_run else total}")
    return lines
