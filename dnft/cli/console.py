"""Talking to an operator at a terminal: confirmation before destructive operations."""

from __future__ import annotations

import sys


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
