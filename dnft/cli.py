"""The ``dnft`` command line: one entry point, each command group registered by its own module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from dnft.errors import DnftError

# Each command module exposes ``register(subparsers)``, adding its parsers with
# ``set_defaults(func=...)``; ``func(args)`` returns the process exit code.
Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    from dnft import (
        commands_api,
        commands_audit,
        commands_config,
        commands_contracts,
        commands_db,
        commands_demo,
        commands_dev,
        commands_indexer,
        commands_oracle,
        commands_pusher,
        commands_regenerator,
        commands_replay,
        commands_rerender,
        commands_run,
        commands_status,
        commands_verify,
    )

    parser = argparse.ArgumentParser(prog="dnft", description="Dynamic NFT engine")
    parser.add_argument(
        "--config",
        "-c",
        default=None,
        help="path to dnft.yaml (default: $DNFT_CONFIG or ./dnft.yaml)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (
        commands_api,
        commands_audit,
        commands_config,
        commands_contracts,
        commands_db,
        commands_demo,
        commands_dev,
        commands_indexer,
        commands_oracle,
        commands_pusher,
        commands_regenerator,
        commands_replay,
        commands_rerender,
        commands_run,
        commands_status,
        commands_verify,
    ):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Handler | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return func(args)
    except DnftError as exc:
        print(f"dnft: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
