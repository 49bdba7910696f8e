"""Process hardening for daemons that hold a secret (the pusher's signing key).

A core dump holds the whole address space, the key included, and may be written where other
users or a crash collector read it; ptrace and /proc/PID/mem give the same access to
same-user processes. ``protect_secrets`` closes both before the key is loaded.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import resource
import sys
from dataclasses import dataclass

import structlog

__all__ = ["Protection", "protect_secrets"]

_PR_SET_DUMPABLE = 4
log = structlog.get_logger("dnft.hardening")


@dataclass(frozen=True, slots=True)
class Protection:
    """What ``protect_secrets`` achieved: ``core_dumps_off`` (RLIMIT_CORE 0, hard limit too)
    and ``not_dumpable`` (Linux PR_SET_DUMPABLE 0: no core, no ptrace attach by peers)."""

    core_dumps_off: bool
    not_dumpable: bool


def protect_secrets() -> Protection:
    """Disable core dumps and make the process non-dumpable, where the platform allows.

    Never raises: each step that the platform lacks is reported as False (and logged, as
    ``secrets_protected``). Blocks for a few microseconds (two system calls); call it once at
    start, before reading the key.
    """
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        core_dumps_off = True
    except (ValueError, OSError):
        core_dumps_off = False
    not_dumpable = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            not_dumpable = libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
        except (OSError, AttributeError):
            not_dumpable = False
    protection = Protection(core_dumps_off, not_dumpable)
    log.info("secrets_protected", core_dumps_off=core_dumps_off, not_dumpable=not_dumpable)
    return protection
