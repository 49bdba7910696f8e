"""A test hook: ``DNFT_PUSHER_CRASH_AT=point[:n]`` makes the process SIGKILL itself the n-th
time (default 1st) it passes ``point``, so crash tests can die exactly between two steps.

Points: ``after_record`` (updates in the outbox, offsets not committed), ``after_plan``,
``after_sign`` (signed tx recorded, not broadcast), ``after_send`` (broadcast, not marked),
``after_mined`` (receipt recorded, not confirmed). Unset (production): a dict lookup, no-op.
"""

from __future__ import annotations

import os
import signal

_ENV = "DNFT_PUSHER_CRASH_AT"
_passes: dict[str, int] = {}


def crash_point(name: str) -> None:
    spec = os.environ.get(_ENV)
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    _passes[name] = _passes.get(name, 0) + 1
    if _passes[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
