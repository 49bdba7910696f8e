"""Talking to an operator at a terminal: each command's parser, and confirmation before
destructive operations."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from typing import TypeAlias

# A command module's docstring starts ``dnft name``: (or ``dnft name a|b``:).
_LABEL = re.compile(r"^``dnft [^`]*``:\s*")
# What a command module's ``register`` receives.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_command(
    sub: Commands, name: str, doc: str | None, run: Callable[[argparse.Namespace], int]
) -> argparse.ArgumentParser:
    """Add command ``name`` described by ``doc`` (its module's docstring): the first paragraph,
    less its leading ``dnft name``: label, is the one line ``dnft --help`` lists; ``dnft name
    --help`` shows all of it. ``run(args)`` returns the exit code."""
    summary = (doc or "").split("\n\n", 1)[0]
    summary = " ".join(_LABEL.sub("", summary, count=1).split())
    parser = sub.add_parser(
        name, help=summary, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.set_defaults(func=run)
    return parser


def confirm(question: str, *, assume_yes: bool) -> bool:
    """Ask ``question`` on a terminal; True if the operator answers yes.

    Without a terminal on standard input (scripts, CI, Kubernetes jobs) nobody can answer, so
    it proceeds: the command line itself is the confirmation there. ``assume_yes`` (--yes)
    skips the question.
    """
    if assume_yes or not sys.stdin.isatty():
        return True
    answer = input(f"{question} [y/N] ").strip().lower()
    return answer in ("y", "yes")
