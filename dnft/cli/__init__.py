"""The ``dnft`` command line (the roof: it imports every part, and nothing imports it).

One module per command, each exposing ``register(subparsers)``; they parse arguments, call the
part that does the work, and print. No command holds the work itself.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from dnft.errors import DnftError

# Each command module exposes ``register(subparsers)``, adding its parsers with
# ``set_defaults(func=...)``; ``func(args)`` returns the process exit code.
Handler = Callable[[argparse.Namespace], int]


# The command modules, each registering its parsers; imported when the parser is built.
COMMANDS = (
    "api",
    "audit",
    "config",
    "contracts",
    "db",
    "demo",
    "dev",
    "indexer",
    "init",
    "oracle",
    "pusher",
    "regenerator",
    "replay",
    "rerender",
    "run",
    "status",
    "verify",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dnft", description="Dynamic NFT engine")
    parser.add_argument(
        "--config",
        "-c",
        default=None,
        help="path to dnft.yaml (default: $DNFT_CONFIG or ./dnft.yaml)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"dnft.cli.{name}").register(sub)
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
